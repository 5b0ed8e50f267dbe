package regtest

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/registry/server"
	"github.com/airlock-dev/airlock/registry/store/boltstore"
	"github.com/airlock-dev/airlock/registry/store/fsstore"
)

// Airlock starts Airlock's own registry (registry/server over the
// filesystem blob store and the bbolt metadata store, as `airlock registry
// serve` runs it) under httptest, in a temporary directory, and stops it
// when the test ends.
func Airlock(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	dir := t.TempDir()
	blobs, err := fsstore.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := boltstore.New(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Blobs, cfg.Meta = blobs, meta
	srv := httptest.NewServer(server.New(cfg))
	t.Cleanup(func() {
		srv.Close()
		if err := meta.Close(); err != nil {
			t.Error(err)
		}
	})
	return &Server{Host: strings.TrimPrefix(srv.URL, "http://"), URL: srv.URL, Root: dir, Close: srv.Close}
}
