package memstore

import (
	"testing"

	"github.com/airlock-dev/airlock/registry/store"
	"github.com/airlock-dev/airlock/registry/store/storetest"
)

// The conformance suite every store passes. The restart suite does not
// apply: memory does not survive a restart.
func TestBlobs(t *testing.T) {
	storetest.TestBlobs(t, func(*testing.T) store.Blobs { return NewBlobs(nil) })
}

func TestMeta(t *testing.T) {
	storetest.TestMeta(t, func(*testing.T) store.Meta { return NewMeta() })
}
