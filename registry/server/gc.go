package server

import (
	"context"

	"github.com/airlock-dev/airlock/registry/store"
)

// GC collects garbage in the server's stores while it serves. It is
// store.GC with the sweep (the second mark and the deletions) excluded
// against manifest PUTs: a PUT that references an old, unreferenced blob
// either commits before the sweep marks, and the blob lives, or checks the
// blob after it was deleted, and fails with MANIFEST_BLOB_UNKNOWN; it can
// never commit a manifest whose blob is then deleted.
func (s *Server) GC(ctx context.Context, opts store.GCOptions) (store.GCReport, error) {
	opts.Sweep = &s.sweep
	if opts.Now == nil {
		opts.Now = s.now
	}
	return store.GC(ctx, s.cfg.Blobs, s.cfg.Meta, opts)
}
