// Package boltstore keeps the embedded registry's metadata in one bbolt
// file: it implements store.Meta and owns the bucket layout.
//
// Buckets:
//
//	repos/<name>/manifests   digest → JSON store.Manifest
//	repos/<name>/tags        tag → digest
//	repos/<name>/links       digest → (empty): blobs the repository holds
//	repos/<name>/referrers   "<subject> <digest>" → (empty): the referrers index
//	uploads                  session ID → JSON {repo, started}
//	audit                    big-endian uint64 sequence → JSON store.Event
//
// Every method is one bbolt transaction, and bbolt fsyncs each write
// transaction before it returns, so a PutManifest's manifest, referrer
// entry, tag and audit event are durable together or not at all.
// docs/registry-storage.md says why bbolt rather than SQLite.
package boltstore
