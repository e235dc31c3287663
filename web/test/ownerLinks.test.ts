import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api";
import { claimErrorText, expiryText, OWNER_LINK_REFUSED, ownerCodeOf, ownerLinkErrorText } from "../src/ownerLinks";

describe("ownerCodeOf", () => {
  it("reads the code from the fragment, alone or beside an invite", () => {
    expect(ownerCodeOf("#owner=own_abc-_1")).toBe("own_abc-_1");
    expect(ownerCodeOf("#invite=inv_x&owner=own_y")).toBe("own_y");
    expect(ownerCodeOf("owner=own_z")).toBe("own_z");
  });

  it("is null without one", () => {
    for (const fragment of ["", "#", "#invite=inv_x", "#owner=", "#ownerx=own_a"]) expect(ownerCodeOf(fragment)).toBeNull();
  });
});

describe("claimErrorText", () => {
  it("says a used, replaced or expired link plainly, whatever the server's words", () => {
    expect(claimErrorText(new ApiError(403, "owner_link_invalid", "server words"))).toBe(OWNER_LINK_REFUSED);
    expect(claimErrorText(new ApiError(422, "validation_error", "Invalid body.code"))).toBe(OWNER_LINK_REFUSED);
    expect(OWNER_LINK_REFUSED).toBe("This owner link was used or has expired; ask for a new one.");
  });

  it("tells a busy or unreachable server apart, so the person knows to open it again", () => {
    expect(claimErrorText(new ApiError(429, "rate_limited", "x"))).toContain("busy");
    expect(claimErrorText(new ApiError(0, "network_error", "x"))).toContain("cannot be reached");
    expect(claimErrorText(new ApiError(404, "session_not_found", "x"))).toContain("no longer exists");
  });
});

describe("expiryText", () => {
  it("says until when the link works, and that it works once", () => {
    const now = new Date("2026-12-01T10:00:00Z");
    const text = expiryText("2026-12-01T10:10:00Z", now);
    expect(text).toMatch(/^Works once, until .+ \(10 min\)\.$/);
    expect(expiryText("2026-12-01T09:59:00Z", now)).toMatch(/^Works once, until [^(]+\.$/);
  });
});

describe("ownerLinkErrorText", () => {
  it("explains a refused making in plain words", () => {
    expect(ownerLinkErrorText(new ApiError(403, "owner_key_invalid", "x"))).toContain("owner key is no longer accepted");
    expect(ownerLinkErrorText(new ApiError(404, "session_not_found", "x"))).toContain("no longer exists");
    expect(ownerLinkErrorText(new Error("boom"))).toBe("No owner link: boom");
  });
});
