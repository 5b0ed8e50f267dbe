// Package store holds what Airlock's embedded registry keeps: blobs
// (content-addressed bytes, manifests included) and metadata (which
// repository holds which manifest and blob, tags, referrers, upload
// sessions, the audit log). Each sits behind a small interface with one
// conformance suite (registry/store/storetest) that every implementation
// passes: the filesystem and bbolt ones here, S3 and PostgreSQL later.
//
// Integrity rules every implementation keeps:
//   - a blob is visible under a digest only once all its bytes are durable
//     and hash to that digest (temp file, fsync, rename);
//   - an upload session survives a restart of the server and resumes at
//     the byte it stopped at;
//   - metadata changes are atomic: a manifest, its blob references, its
//     referrer entry and its tag appear together or not at all.
package store
