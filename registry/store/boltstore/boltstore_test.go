package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/registry/store"
	"github.com/airlock-dev/airlock/registry/store/boltstore"
	"github.com/airlock-dev/airlock/registry/store/storetest"
)

func open(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.New(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.TestMeta(t, func(t *testing.T) store.Meta {
		return open(t, filepath.Join(t.TempDir(), "meta.db"))
	})
}
