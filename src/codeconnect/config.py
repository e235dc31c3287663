"""The one settings object.

Every limit the service enforces is a named field here with a documented default. Values come from the
environment with the prefix ``CODECONNECT_`` (``CODECONNECT_DATABASE_URL``, ...), except ``HOST`` and ``PORT``
which keep their plain names so the service behaves like any other container process.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codeconnect.clients import TrustedProxies
from codeconnect.languages import LANGUAGES

KiB = 1024
MiB = 1024 * KiB

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/codeconnect.db"

# A DNS name (optionally `*.` for any subdomain), an IPv4 address, a bracketed IPv6 address, or `*`.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_HOST_PATTERN = re.compile(rf"\*|(?:\*\.)?{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\]")


class Settings(BaseSettings):
    """Configuration of one Code Connect Live process."""

    model_config = SettingsConfigDict(env_prefix="CODECONNECT_", extra="ignore", frozen=True)

    # --- Process -----------------------------------------------------------------------------------------
    host: str = Field(
        default="0.0.0.0",
        validation_alias=AliasChoices("HOST", "CODECONNECT_HOST"),
        description="Interface `codeconnect serve` binds to.",
    )
    port: int = Field(
        default=3000,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("PORT", "CODECONNECT_PORT"),
        description="TCP port `codeconnect serve` listens on.",
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL. SQLite files are created on demand (WAL mode); "
        "`postgresql+asyncpg://...` for PostgreSQL.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL (`redis://host:6379/0`). Set, with PostgreSQL, to serve the same sessions from "
        "several processes and hosts (`serve --workers N`, or several `serve` behind a load balancer); unset, "
        "one process serves everything.",
    )
    redis_stream_max_length: int = Field(
        default=1000,
        ge=10,
        le=1_000_000,
        description="Entries kept in each session's Redis stream (approximately, `XADD MAXLEN ~`): how far "
        "behind a process may fall before it heals from the database instead.",
    )
    redis_replay_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="A process loading a room replays this much of the session's Redis stream on top of the "
        "database: updates other processes relayed but had not committed yet.",
    )
    redis_heal_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Longest wait between a gap in Redis delivery (Redis down, a dropped connection, a stream "
        "trimmed past what a process read) and that process re-reading its rooms from the database.",
    )
    redis_outbox_entries: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="Entries a process keeps for Redis while it is unreachable, sent when it returns; older "
        "ones are dropped (the other processes get them by healing from the database).",
    )
    redis_batch_ms: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description="How long a process gathers entries before sending them to Redis in one write (0: send at "
        "once). Each write and its reply cost a round trip of system calls on both sides; gathering trades that "
        "for this much latency between processes.",
    )
    worker_healthcheck_seconds: int = Field(
        default=30,
        ge=1,
        le=600,
        description="With `serve --workers N`: how long a worker has to answer its supervisor's health check (and a "
        "new worker to finish starting) before it is replaced. Uvicorn's own default, 5 s, is shorter than a worker "
        "takes to start on a busy machine, where workers were replaced over and over and the server never served.",
    )
    process_heartbeat_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How often each process renews its row in the database's process list (and its presence "
        "in Redis); a process not heard from for three intervals counts as gone.",
    )
    db_wait_seconds: float = Field(
        default=30.0, gt=0, le=600,
        description="Longest time a request waits for a database connection (on SQLite: its turn) before a 503.",
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins other websites may call the API from (CORS), e.g. "
        "`https://tools.example.com`, or `*` for any; empty: same-origin only (the page needs nothing more).",
    )
    allowed_hosts: str | None = Field(
        default=None,
        description="Comma-separated host names the server answers to (`pad.example.com`, `*.example.com`); "
        "requests with another `Host` header, WebSocket upgrades included, get 400 `invalid_host` (protects "
        "against DNS rebinding). Unset: any host.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses and CIDR networks of the reverse proxies in front of the server "
        "(`10.0.0.5`, `10.0.0.0/8`, `fd00::/8`): a request from one of them is counted under the right-most "
        "address of its `X-Forwarded-For` that is not one of them. Empty: the TCP peer is the client, whatever "
        "the request's headers say.",
    )
    log_level: str = Field(default="info", description="Log level of the service and uvicorn.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text` (uvicorn's lines) or `json`: one object per line with `time`, `level`, `logger`, "
        "`message` and, where there is one, `request_id` (also the response's `X-Request-ID` header) and "
        "`session` (a short keyed hash of the session id; ids, tokens and keys are never logged).",
    )
    log_hash_key: SecretStr | None = Field(
        default=None,
        description="Key of the hash that stands for a session id in log lines; give every process the same one "
        "to follow a session across them. Unset: a random key per process.",
    )
    metrics: bool = Field(
        default=True,
        description="Serve `GET /metrics` in the Prometheus text format (see \"Metrics\"); false: no such route. "
        "On a server the internet reaches, set `CODECONNECT_METRICS_TOKEN` or keep `/metrics` behind the proxy.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, `/metrics` answers only requests with `Authorization: Bearer <token>` (others get "
        "401); unset, anyone who reaches the server may read it.",
    )

    # --- Tenants ---------------------------------------------------------------------------------------------
    auth: Literal["open", "api-key"] = Field(
        default="open",
        description="`open`: anyone who reaches the server creates sessions, in the default workspace; "
        "`api-key`: creating a session needs `Authorization: Bearer <key>` of a workspace (401 otherwise).",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the admin API (`/v1/admin/...`: workspaces, policies, keys); unset, that "
        "API does not exist (404).",
    )

    owner_link_seconds: int = Field(
        default=600,
        ge=1,
        le=86_400,
        description="How long an owner link (`POST /v1/sessions/{id}/owner-links`) works: within this time its "
        "code hands the session's owner key to one browser, once; a new link replaces the session's previous one.",
    )

    policy_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="How long a process keeps a workspace's policy for creating sessions. A change through the admin "
        "API applies at once on every process; one made with `codeconnect workspace policy` within this time.",
    )

    # --- Retention -------------------------------------------------------------------------------------------
    retention_days: int = Field(
        default=90,
        ge=0,
        le=36_500,
        description="Days a session may stay idle (no change, nobody connected) before it is purged with everything "
        "it holds, where its workspace's policy sets no `retentionDays`; 0 keeps such sessions until deleted.",
    )
    purge_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often each process looks for idle sessions past their retention and purges them.",
    )
    purge_batch_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Sessions purged in one transaction (a purge goes on batch after batch until none is left).",
    )
    deleted_sessions_kept: int = Field(
        default=10_000,
        ge=16,
        description="Deleted sessions each process remembers, so that late updates of their dropped rooms are "
        "discarded rather than stored (the oldest forgotten first).",
    )

    # --- History, playback and notes --------------------------------------------------------------------------
    history_days: int = Field(
        default=30,
        ge=0,
        le=36_500,
        description="Days each change is kept for playback; older ones are folded into the base the history starts "
        "from by the purge task (the current document is never affected). 0 keeps history as long as the session.",
    )
    history_for_participants: bool = Field(
        default=False,
        description="Let a session's participants (`X-Participant-Token`) read its history and play it back; "
        "false: only the owner (`X-Owner-Key`). Restoring and notes are the owner's either way.",
    )
    history_checkpoint_every: int = Field(
        default=200,
        ge=10,
        le=10_000,
        description="Changes between two checkpoints of a replayed history (the document kept whole): a seek applies "
        "at most this many updates; fewer cost more memory.",
    )
    history_max_changes: int = Field(
        default=100_000,
        ge=1,
        description="Most changes of one session that history, playback, restore and export read (about 1 KiB each "
        "once replayed; an export counts its base too, as an import does); past it they answer 413 "
        "`history_too_long`, while the live session, its current text and its log are not affected.",
    )
    history_cache_bytes: int = Field(
        default=128 * MiB,
        ge=1 * MiB,
        description="Memory the replayed histories of each process may take (about 1 KiB per change; a one-hour "
        "session of three typists is about 20 MiB); the least recently read are dropped past it.",
    )
    history_replays_max: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Histories a process replays at once (CPU work in worker threads, about a second per hour of "
        "typing); more wait their turn, so a burst of first reads cannot take every core from live editing.",
    )
    history_page_size: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Most changes one `GET .../history` answer lists (its `limit`).",
    )
    notes_max_bytes: int = Field(
        default=64 * KiB,
        ge=1,
        le=16 * MiB,
        description="Largest private notes of a session's owner, in bytes of UTF-8 (413 past it).",
    )
    notes_wait_seconds: float = Field(
        default=25.0,
        ge=0,
        le=120,
        description="Longest a `GET .../notes?since=<version>` waits for a newer version before it answers the "
        "current one (how the owner's tabs see each other's notes live).",
    )
    notes_waiters_per_session: int = Field(
        default=16,
        ge=1,
        description="Most `GET .../notes?since=` long-polls one session's notes may have waiting in a process (the "
        "owner's open tabs); one more gets 429 `notes_waiters_exceeded`.",
    )
    notes_waiters_max: int = Field(
        default=1000,
        ge=1,
        description="Most `GET .../notes?since=` long-polls waiting in a process over all sessions; one more gets 429 "
        "`notes_waiters_exceeded`.",
    )
    import_max_changes: int = Field(
        default=100_000,
        ge=1,
        description="Most changes (history and base updates) one import may hold, which bounds the work of replaying "
        "it (about 5 hours of three people typing); more is refused with 413 `import_too_large`.",
    )
    import_max_bytes: int = Field(
        default=32 * MiB,
        ge=1,
        description="Largest body of `POST /v1/sessions/import` (a session's export); larger ones are refused with 413 "
        "before they are read.",
    )

    # --- REST limits -----------------------------------------------------------------------------------------
    max_code_bytes: int = Field(
        default=1 * MiB, ge=1, description="Largest code text of a session, in UTF-8 bytes."
    )
    max_body_bytes: int = Field(
        default=2 * MiB,
        ge=1,
        description="Largest HTTP request body; larger bodies are refused with 413 before they are read.",
    )
    # At most the columns' sizes (sessions.title, participants.name): PostgreSQL refuses longer values.
    max_title_length: int = Field(default=200, ge=1, le=400, description="Longest session title, in characters.")
    max_name_length: int = Field(default=64, ge=1, le=200, description="Longest participant name, in characters.")
    max_participants: int = Field(
        default=50, ge=1, description="Participants a session can have; one more gets 409 `session_full`."
    )
    max_stdin_bytes: int = Field(default=64 * KiB, ge=0, description="Largest stdin of one execution.")
    rate_sessions_per_minute: int = Field(
        default=30,
        ge=0,
        description="Sessions one client address (IPv6: one /64) may create in any minute (`POST /v1/sessions`); "
        "one more gets 429 `rate_limited` with `Retry-After`. 0: no limit.",
    )
    rate_joins_per_minute: int = Field(
        default=120,
        ge=0,
        description="Joins (`POST .../participants`, by session id or read-only link) and owner-link claims "
        "(`POST .../owner-claims`) one client address (IPv6: one /64) may make in any minute, over all sessions; one "
        "more gets 429 `rate_limited` with `Retry-After`. 0: no limit.",
    )
    rate_tracked_clients: int = Field(
        default=10_000,
        ge=16,
        description="Client addresses whose REST rates a process remembers (the least recent is forgotten first); "
        "with Redis the rates are counted there, and this is what each process falls back on while it is away.",
    )

    # --- Live co-editing -------------------------------------------------------------------------------------
    ws_max_message_bytes: int = Field(
        default=2 * MiB, ge=1024, description="Largest WebSocket message; larger closes with 4413."
    )
    ws_rate_per_second: float = Field(
        default=200.0, gt=0, description="Sustained messages per second a connection may send."
    )
    ws_rate_burst: int = Field(
        default=1000, ge=1, description="Token-bucket size: messages a connection may send in a burst."
    )
    ws_messages_per_turn: int = Field(
        default=8,
        ge=1,
        description="Messages of one connection handled before the others get their turn (what a burst from one "
        "connection can delay everyone else by).",
    )
    ws_greeting_document_bytes: int = Field(
        default=64 * KiB,
        ge=0,
        description="A new live connection is sent the whole document with the server's greeting (a sync step 2 "
        "after its step 1) while the document is no larger than this, so it is in sync without waiting a round "
        "trip for its own request's answer; a larger one waits for the client's state vector, so a client back "
        "from offline is sent only what it lacks. 0: never.",
    )
    ws_sync_bytes_per_message: int = Field(
        default=16 * KiB,
        ge=1024,
        description="A connection's repeated sync requests cost one message of its rate per this many bytes of "
        "the answer the server had to encode (its first is free): what keeps a peer from making the server encode "
        "a large document over and over.",
    )
    ws_update_bytes_per_message: int = Field(
        default=16 * KiB,
        ge=1024,
        description="An update costs its sender one message of its rate per this many bytes, on top of the message "
        "itself: applying an update costs the server in proportion to its size, so a peer sending large updates "
        "as fast as the message rate allows is slowed down like a flood. Typing costs nothing more; a paste of "
        "1 MB, 64 messages of the burst.",
    )
    ws_rate_grace_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a connection may stay over its rate before it is closed with 4429.",
    )
    ws_close_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long a client closed for breaking a rule has to answer the close before its socket is cut.",
    )
    ws_send_queue_messages: int = Field(
        default=1024,
        ge=1,
        description="Outgoing messages queued for one connection; a client that falls further behind is dropped.",
    )
    max_connections_per_session: int = Field(
        default=100, ge=1, description="Live connections one session accepts at once."
    )
    max_connections_per_participant: int = Field(
        default=4,
        ge=1,
        description="Live connections one participant (one token) may hold at once; one more closes 4429.",
    )
    session_seats_kept_for_editors: int = Field(
        default=10,
        ge=0,
        description="Live connections of a session that viewers can never take, so viewers cannot lock editors out.",
    )
    ws_refusal_cooldown_max_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest cooldown of a participant whose connections keep being closed for breaking a rule "
        "(1 s after the first, doubling); its reconnects meanwhile are refused with 4429 before any work.",
    )
    ws_connects_per_minute: float = Field(
        default=60.0,
        gt=0,
        description="New live connections one participant may open a minute, sustained (see ws_connect_burst); one "
        "more is refused with 4429 (held like a cooldown refusal): every new connection gets the whole document "
        "encoded, so a loop of connections that break no rule would otherwise cost a full sync each.",
    )
    ws_connect_burst: int = Field(
        default=20,
        ge=1,
        description="New live connections one participant may open at once before ws_connects_per_minute applies.",
    )
    ws_refusal_hold_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="How long a connection refused for its participant's cooldown is held open, silent, before it "
        "is closed with 4429 (at most the cooldown left): a client that reconnects at once is slowed to one "
        "attempt per connection per this many seconds, instead of as many as the server can refuse.",
    )
    ws_preauth_bytes: int = Field(
        default=64 * KiB,
        ge=1024,
        description="Bytes a live connection may send before it is authenticated and seated (larger closes 4413).",
    )
    ws_frame_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest time a started WebSocket frame (or fragmented message) may take to arrive whole; "
        "a slower one closes 4408.",
    )
    ws_send_stall_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a live connection's outgoing backlog may make no progress before its socket is cut.",
    )
    # A vanished browser is cut interval + timeout after its last frame, which may be its awareness renewal (every
    # 15 s); the others' pages drop its awareness state 30 s after that renewal, and the REST online flag should
    # not lag behind them: 10 + 15 = 25 s.
    ws_ping_interval_seconds: float = Field(
        default=10.0, gt=0, description="A live connection silent for this long is sent a ping."
    )
    ws_ping_timeout_seconds: float = Field(
        default=15.0, gt=0, description="How long after its ping a silent connection has to answer before it is cut."
    )
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest time a client may take to send a request's headers, from its first byte (or the "
        "connection's start); a slower connection is closed.",
    )
    http_max_header_bytes: int = Field(
        default=64 * KiB, ge=1024, description="Largest request head (request line and headers); larger is closed."
    )
    commit_window_ms: int = Field(
        default=25, ge=0, le=50, description="Group-commit window for live updates, in milliseconds."
    )
    compact_after_updates: int = Field(
        default=500, ge=1, description="Stored updates of a document that trigger compaction into a snapshot."
    )
    ws_auth_cache_entries: int = Field(
        default=1024,
        ge=0,
        description="Recently seen participant tokens kept in memory, so reconnects skip the database (least "
        "recently seen first out; 0 turns it off).",
    )
    new_document_cache_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=0,
        description="Bytes of first document updates of sessions created by this process kept in memory until "
        "their room first loads, so the first connection skips the database (oldest first out; 0 turns it off; "
        "one process only).",
    )
    ws_admission_tracked_participants: int = Field(
        default=4096,
        ge=16,
        description="Participants whose connect rate and rule-breaking closes are remembered (the least recent is "
        "forgotten first).",
    )
    readiness_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="How long `/readyz` waits for the database before answering 503."
    )
    session_cards: int = Field(
        default=10_000,
        ge=0,
        description="Sessions whose participants and links are kept in memory, so that reading a session whose "
        "room is loaded needs no database round trip (least recently read first out; 0 turns it off).",
    )
    session_read_cache_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="Bytes of sessions nobody has open kept in memory as last read, while their rows hold the "
        "exact text, so that reading one again needs no database round trip until it changes (least recently "
        "read first out; 0 turns it off; one process only: with Redis every such read goes to the database).",
    )
    room_unload_grace_seconds: float = Field(
        default=10.0, ge=0, description="How long an empty room stays in memory before it is unloaded."
    )
    slow_update_close_seconds: float = Field(
        default=2.0,
        gt=0,
        description="An update that took longer than this to apply closes its sender (checked once it is "
        "applied: the validator keeps such updates out, this catches what it missed).",
    )
    ws_send_queue_bytes: int = Field(
        default=16 * MiB,
        ge=1024,
        description="Outgoing bytes waiting for one live connection (queued or in its socket's buffer); a client "
        "further behind is dropped. A single larger message (a first sync) may go out when nothing waits.",
    )
    max_document_bytes: int = Field(
        default=32 * MiB,
        ge=1024,
        description="Largest stored Yjs state of a session (text, history, run output); updates past it close 4413.",
    )
    max_awareness_state_bytes: int = Field(
        default=16 * KiB, ge=64, description="Largest awareness (presence/cursor) state of one client."
    )
    ws_awareness_bytes_per_message: int = Field(
        default=KiB,
        ge=64,
        description="A presence (awareness) change relayed to the room costs its sender one message of its rate "
        "per this many bytes of the state, on top of the message itself: what keeps one client from making the "
        "server send megabytes a second of presence to everyone.",
    )
    live_output_max_bytes: int = Field(
        default=8 * KiB,
        ge=256,
        le=1 * MiB,
        description="Most live run output (UTF-8 bytes) one presence state may carry; the page sends at most 4 KiB "
        "a state. A larger one closes its sender with 4400.",
    )
    live_output_max_pieces: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Most output pieces (stdout/stderr changes) one presence state's live run output may hold.",
    )
    max_client_ids_per_participant: int = Field(
        default=32,
        ge=1,
        description="Yjs client ids a loaded room remembers as one participant's (each page load is a new id); "
        "past it the least recently used is forgotten.",
    )
    mirror_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often a live document's code/language/title are copied into its session row.",
    )

    # --- Execution -------------------------------------------------------------------------------------------
    execution: Literal["off", "sandbox"] = Field(
        default="off", description="`off`: code runs only in browsers; `sandbox`: the server runs it in bwrap."
    )
    exec_languages: str = Field(
        default="",
        description="Comma-separated languages the server's sandbox offers (`python`, `javascript`, `typescript`, "
        "`java`, `cpp`), e.g. `java,cpp` where browsers run the rest; empty: every language whose tools this "
        "host has. Languages left out are neither self-tested at start nor run.",
    )
    exec_cpu_seconds: int = Field(default=5, ge=1, description="CPU seconds one compile or run may use.")
    exec_wall_seconds: float = Field(
        default=10.0, gt=0, description="Wall-clock seconds one compile or run may take before it is killed."
    )
    exec_memory_mb: int = Field(default=512, ge=64, description="Address-space limit of a run (non-JVM), MB.")
    exec_jvm_memory_mb: int = Field(
        default=1024, ge=640, description="Address-space limit of javac and java, MB (the JVM needs >= 640)."
    )
    exec_max_processes: int = Field(default=64, ge=1, description="Processes a run may have at once.")
    exec_max_output_bytes: int = Field(
        default=64 * KiB, ge=1, description="Output kept per stream; past it the run is killed and truncated."
    )
    exec_max_file_bytes: int = Field(
        default=10 * MiB, ge=0, description="Largest file a run may write (RLIMIT_FSIZE)."
    )
    exec_tmpfs_mb: int = Field(default=64, ge=1, description="Size of the run's private work directory, MB.")
    exec_shm_mb: int = Field(default=16, ge=1, description="Size of the run's /dev/shm, MB.")
    exec_run_memory_mb: int = Field(
        default=1024,
        ge=128,
        description="Memory one run may hold in total (all its processes, its files in /work and /dev/shm, "
        "memory no address space shows), MB; held by the run's cgroup.",
    )
    exec_total_memory_mb: int | None = Field(
        default=None,
        ge=128,
        description="Memory all runs together may hold, MB (default: runs at once x exec_run_memory_mb); "
        "the cgroup of all runs holds it and at most total / exec_run_memory_mb runs start at once.",
    )
    exec_cgroup: Literal["auto", "v2", "v1", "off"] = Field(
        default="auto",
        description="What bounds a run's total memory and processes: `v2` or `v1` cgroups, `auto` (v2 if "
        "delegated with memory and pids, else v1, else off), `off`: the process limit is lowered so that "
        "processes x address space fits exec_run_memory_mb.",
    )
    exec_max_open_files: int = Field(default=256, ge=16, description="Open files a run may have at once.")
    exec_concurrency: int | None = Field(
        default=None, ge=1, description="Runs executing at once (default: number of CPU cores)."
    )
    exec_queue_size: int = Field(
        default=8, ge=0, description="Runs that may wait for a slot; beyond it 429 `execution_busy`."
    )
    exec_rate_per_minute: int = Field(
        default=60, ge=1, description="Executions one client address (IPv6: one /64) may start per minute."
    )
    exec_compile_cpu_seconds: int = Field(
        default=10, ge=1, description="CPU seconds one compile step (javac, g++, type stripping) may use."
    )
    exec_compile_wall_seconds: float = Field(
        default=20.0, gt=0, description="Wall-clock seconds one compile step may take before it is killed."
    )
    exec_compile_memory_mb: int = Field(
        default=1024, ge=256, description="Address-space limit of g++ (cc1plus) while compiling, MB."
    )
    exec_node_memory_mb: int = Field(
        default=1024,
        ge=768,
        description="Address-space limit of node runs, MB (V8 reserves ~700 MB of address space at start).",
    )
    exec_uid: int = Field(
        default=65534,
        ge=1,
        description="Unprivileged uid (and gid) the sandbox runs as when the server runs as root.",
    )
    exec_slot_uid_base: int | None = Field(
        default=None,
        ge=1,
        description="If set, run slot N runs as uid (and gid) base+N instead of exec_uid: RLIMIT_NPROC counts "
        "processes per uid, so with one shared uid a fork bomb in one run starves the runs beside it. "
        "Pick a range no account uses (e.g. 200000).",
    )
    exec_seccomp: bool = Field(
        default=True,
        description="Install the sandbox's seccomp deny-list (x86-64): module loading, eBPF, perf, io_uring, "
        "userfaultfd, keyrings, mounts, ptrace... fail with EPERM.",
    )
    exec_bwrap_path: str = Field(default="bwrap", description="bubblewrap executable (name or path).")
    exec_typescript_dir: str | None = Field(
        default=None,
        description="Folder with strip.cjs and node_modules/sucrase for TypeScript runs "
        "(default: the one shipped in codeconnect/execution/ts, set up with `npm ci`).",
    )

    # --- Web app ---------------------------------------------------------------------------------------------
    run_time_limit_seconds: float = Field(
        default=10.0, gt=0, description="Time limit of an in-browser run before the page stops it."
    )
    web_preload_runners: bool = Field(
        default=True,
        description="Load the current language's in-browser runner (Pyodide for Python, QuickJS for JavaScript and "
        "TypeScript) as soon as an editor's page is idle, so that the first Run starts at once. Off: nothing is "
        "loaded until someone presses Run, which spares every participant the download (several MB for Python) and "
        "its CPU, for classrooms on slow or metered networks and low-end devices.",
    )
    web_static_dir: str | None = Field(
        default=None,
        description="Folder of the built web page (`scripts/build-web` output); unset: the package's `static/`.",
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        # Accept the URLs people paste from other tools and pick the async driver we ship.
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
        if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
            url = "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
        return url

    @model_validator(mode="after")
    def _redis_needs_postgres(self) -> Settings:
        if self.redis_url is not None and self.is_sqlite:
            raise ValueError(
                "CODECONNECT_REDIS_URL is for several processes sharing sessions, which needs PostgreSQL: set "
                "CODECONNECT_DATABASE_URL to a postgresql:// URL, or unset CODECONNECT_REDIS_URL for one process "
                "on SQLite"
            )
        return self

    @field_validator("admin_token")
    @classmethod
    def _admin_token_strength(cls, value: SecretStr | None) -> SecretStr | None:
        # The admin token makes keys for every workspace: a short one would be guessable over the network.
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value()) < 24:
            raise ValueError("CODECONNECT_ADMIN_TOKEN must be at least 24 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token would be matched by an empty `Bearer ` header: refused, rather than a guard that holds
        # nothing.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("CODECONNECT_METRICS_TOKEN is empty: set a long random value, or unset it")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: str | None) -> str | None:
        # An entry with a scheme, path or port never equals a Host name: it would lock everyone out, so it is
        # refused at start rather than discovered as 400s.
        if value is None:
            return None
        hosts = [h.strip().lower().rstrip(".") for h in value.split(",") if h.strip()]
        for host in hosts:
            if not _HOST_PATTERN.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name: list names like pad.example.com or *.example.com, "
                    "without scheme, port or path"
                )
        return ",".join(hosts) or None

    @field_validator("exec_languages")
    @classmethod
    def _known_languages(cls, value: str) -> str:
        # A typo would otherwise turn a language off without a word: refused at start instead.
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in LANGUAGES]
        if unknown:
            raise ValueError(f"unknown language {', '.join(unknown)}: choose from {', '.join(LANGUAGES)}")
        return ",".join(dict.fromkeys(names))

    @cached_property
    def exec_language_set(self) -> frozenset[str]:
        """``exec_languages`` as a set; empty when every language with its tools present is offered."""
        return frozenset(name for name in self.exec_languages.split(",") if name)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        # Refused at start: a typo would otherwise silently count every client behind the proxy as one.
        return ",".join(str(network) for network in TrustedProxies.parse(value).networks)

    @cached_property
    def trusted_proxy_networks(self) -> TrustedProxies:
        """``trusted_proxies`` parsed (empty: no proxy is trusted)."""
        return TrustedProxies.parse(self.trusted_proxies)

    @cached_property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @cached_property
    def allowed_host_list(self) -> list[str]:
        """The Host allow-list, lower case; empty when any host is served."""
        return self.allowed_hosts.split(",") if self.allowed_hosts else []

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_clustered(self) -> bool:
        """Whether rooms are shared with other processes: Redis, on PostgreSQL (SQLite is one process's)."""
        return self.redis_url is not None and not self.is_sqlite


def settings_table() -> str:
    """The README's table of settings (between its ``settings-table`` markers), made from the fields above."""
    rows = ["| Variable | Default | What it sets |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        env = name.upper() if name in ("host", "port") else f"CODECONNECT_{name.upper()}"
        default = "(unset)" if field.default is None else "(empty)" if field.default == "" else str(field.default)
        rows.append(f"| `{env}` | `{default}` | {field.description} |")
    return "\n".join(rows)
