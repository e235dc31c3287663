"""Workspaces: tenants with a policy for their sessions, and the API keys that create sessions in them."""
