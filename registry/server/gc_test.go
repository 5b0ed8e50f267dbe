package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
)

// TestGCWhilePushing runs garbage collection, as `airlock registry serve`
// does, while clients push manifests that reference blobs GC considers
// old and unreferenced (the HEAD-then-skip pattern of every client that
// finds a blob already there). Each push must either succeed with its
// blobs kept, or fail with MANIFEST_BLOB_UNKNOWN; fsck must find nothing
// wrong afterwards.
func TestGCWhilePushing(t *testing.T) {
	f := start(t, Config{})
	const n = 40
	var blobs []digest.Digest
	for i := range n {
		content := []byte(fmt.Sprintf("layer %d", i))
		d := digest.FromBytes(content)
		if r := f.do(t, "POST", "/v2/gc/blobs/uploads/?digest="+d.String(), content); r.status != http.StatusCreated {
			t.Fatalf("blob %d: %d", i, r.status)
		}
		blobs = append(blobs, d)
	}
	cfg := []byte("{}")
	cfgD := digest.FromBytes(cfg)
	if r := f.do(t, "POST", "/v2/gc/blobs/uploads/?digest="+cfgD.String(), cfg); r.status != http.StatusCreated {
		t.Fatalf("config: %d", r.status)
	}

	// GC's clock runs two hours ahead, so every blob above is past the
	// one-hour grace period; the manifests arrive while it sweeps.
	ahead := func() time.Time { return time.Now().Add(2 * time.Hour) }
	var wg sync.WaitGroup
	var gcErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if _, err := f.server.GC(context.Background(), store.GCOptions{Now: ahead}); err != nil {
				gcErr = err
				return
			}
		}
	}()
	results := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/octet-stream","digest":%q,"size":%d}]}`,
				cfgD, blobs[i], len(fmt.Sprintf("layer %d", i)))
			r := f.do(t, "PUT", fmt.Sprintf("/v2/gc/manifests/m%d", i), []byte(m), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
			results[i] = r.status
			if r.status != http.StatusCreated && r.errorCode() != "MANIFEST_BLOB_UNKNOWN" {
				t.Errorf("manifest %d: %d %s", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if gcErr != nil {
		t.Fatal(gcErr)
	}
	rep, err := store.Fsck(context.Background(), f.blobs, f.meta, store.FsckOptions{VerifyContent: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("fsck after GC during pushes: %v", rep.Problems)
	}
	ok := 0
	for i, code := range results {
		if code != http.StatusCreated {
			continue
		}
		ok++
		if r := f.do(t, "GET", "/v2/gc/blobs/"+blobs[i].String(), nil); r.status != http.StatusOK {
			t.Errorf("manifest %d was accepted but its blob is gone: %d", i, r.status)
		}
	}
	t.Logf("%d of %d pushes committed before their blob was swept", ok, n)
}
