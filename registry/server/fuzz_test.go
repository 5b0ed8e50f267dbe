package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store/memstore"
)

// serve runs one request through the handler without a network.
func serve(s *Server, method, path string, body []byte, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// FuzzPutManifest: any body and Content-Type gets a 201 or a 4xx, never a
// 500, and an accepted manifest reads back byte for byte.
func FuzzPutManifest(f *testing.F) {
	meta, blobs := memstore.NewMeta(), memstore.NewBlobs(nil)
	s := New(Config{Blobs: blobs, Meta: meta, MaxManifestBytes: 64 << 10})
	cfg := serve(s, "POST", "/v2/f/blobs/uploads/?digest="+digest.FromString("{}").String(), []byte("{}"))
	if cfg.Code != http.StatusCreated {
		f.Fatalf("seeding config: %d", cfg.Code)
	}
	cd := digest.FromString("{}")
	f.Add([]byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[]}`, cd)), "application/vnd.oci.image.manifest.v1+json")
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`), "")
	f.Add([]byte(`{"schemaVersion":2,"config":null}`), "application/vnd.docker.distribution.manifest.v2+json")
	f.Add([]byte(`{`), "application/json")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		rec := serve(s, "PUT", "/v2/f/manifests/t", body, "Content-Type", contentType)
		switch {
		case rec.Code == http.StatusCreated:
			got := serve(s, "GET", "/v2/f/manifests/t", nil)
			if !bytes.Equal(got.Body.Bytes(), body) || got.Header().Get("Docker-Content-Digest") != rec.Header().Get("Docker-Content-Digest") {
				t.Fatalf("accepted manifest reads back differently")
			}
		case rec.Code >= 500 || rec.Code < 400:
			t.Fatalf("PUT manifest: %d %s", rec.Code, rec.Body)
		}
	})
}

// FuzzPatchUpload: any Content-Range and chunk either appends exactly the
// chunk (202) or changes nothing (416/400), and the status agrees.
func FuzzPatchUpload(f *testing.F) {
	meta, blobs := memstore.NewMeta(), memstore.NewBlobs(nil)
	s := New(Config{Blobs: blobs, Meta: meta})
	f.Add("0-2", []byte("abc"))
	f.Add("", []byte("abc"))
	f.Add("3-1", []byte("x"))
	f.Add("bytes=0-0", []byte("x"))
	f.Add("-1-2", []byte("xyz"))
	f.Fuzz(func(t *testing.T, contentRange string, chunk []byte) {
		loc := serve(s, "POST", "/v2/f/blobs/uploads/", nil).Header().Get("Location")
		seed := serve(s, "PATCH", loc, []byte("abc"))
		if seed.Code != http.StatusAccepted {
			t.Fatalf("seed chunk: %d", seed.Code)
		}
		rec := serve(s, "PATCH", loc, chunk, "Content-Range", contentRange)
		want := int64(3)
		switch rec.Code {
		case http.StatusAccepted:
			want += int64(len(chunk))
		case http.StatusRequestedRangeNotSatisfiable, http.StatusBadRequest:
		default:
			t.Fatalf("PATCH %q: %d %s", contentRange, rec.Code, rec.Body)
		}
		st := serve(s, "GET", loc, nil)
		if got := st.Header().Get("Range"); got != fmt.Sprintf("0-%d", want-1) {
			t.Fatalf("PATCH %q (%d): Range %q, want %d bytes", contentRange, rec.Code, got, want)
		}
		serve(s, "DELETE", loc, nil)
	})
}
