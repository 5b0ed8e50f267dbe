package fsstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/registry/store"
	"github.com/airlock-dev/airlock/registry/store/fsstore"
	"github.com/airlock-dev/airlock/registry/store/storetest"
)

func open(t *testing.T, dir string) store.Blobs {
	t.Helper()
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.TestBlobs(t, func(t *testing.T) store.Blobs { return open(t, t.TempDir()) })
}

func TestRestart(t *testing.T) {
	storetest.TestBlobsRestart(t, open)
}

func TestNewCreatesLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	open(t, root)
	for _, d := range []string{"blobs", "uploads"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
}
