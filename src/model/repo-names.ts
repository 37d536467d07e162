/**
 * Checks for names that come from a hub server, a downloaded file or the user before they become
 * paths: a revision (refs/<revision>), a repo file name (snapshots/<commit>/<file>), an ETag (blobs/<etag>).
 */

/** A revision as a refs/ path: parts of [A-Za-z0-9._-] joined by "/", none "." or "..". */
export const isSafeRevision = (revision: string): boolean =>
  revision.length <= 256 && /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(revision) && revision.split("/").every((part) => part !== "." && part !== "..");

/** A repo file name as a path under snapshots/<commit>/: relative, "/"-separated, no "", ".", ".." part, no backslash or control character. */
export const isSafeRepoFile = (name: unknown): name is string =>
  typeof name === "string" &&
  name.length > 0 &&
  name.length <= 1024 &&
  !name.startsWith("/") &&
  !/[\\\x00-\x1f\x7f]/.test(name) &&
  !/^[A-Za-z]:/.test(name) &&
  name.split("/").every((part) => part !== "" && part !== "." && part !== "..");

/** An ETag kept as a blob name: a git blob sha1 (40 hex) or an LFS sha256 (64 hex), the only ETags a download can be checked against. */
export const isDigestEtag = (etag: string): boolean => /^[0-9a-f]{40}$/.test(etag) || /^[0-9a-f]{64}$/.test(etag);
