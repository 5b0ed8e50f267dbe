package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
	"github.com/airlock-dev/airlock/registry/store/boltstore"
	"github.com/airlock-dev/airlock/registry/store/fsstore"
)

// fuzzRootEnv names a directory for FuzzStoreConsistency to keep its stores
// in, one subdirectory per process in the layout of `airlock registry serve
// --root`, so that `airlock registry fsck` can check them after the run
// (make fuzz-registry does). Unset, the stores live in a temp dir.
const fuzzRootEnv = "AIRLOCK_FUZZ_ROOT"

var (
	fuzzOnce   sync.Once
	fuzzServer *Server
	fuzzBlobs  store.Blobs
	fuzzMeta   store.Meta
	fuzzErr    error
)

// fuzzStores opens the on-disk stores once per process: state accumulates
// across inputs, so later inputs meet what earlier ones left behind.
func fuzzStores(f *testing.F) {
	fuzzOnce.Do(func() {
		root := os.Getenv(fuzzRootEnv)
		if root == "" {
			if root, fuzzErr = os.MkdirTemp("", "airlock-fuzz-"); fuzzErr != nil {
				return
			}
		} else {
			root = filepath.Join(root, strconv.Itoa(os.Getpid()))
		}
		if fuzzErr = os.MkdirAll(root, 0o755); fuzzErr != nil {
			return
		}
		var b *fsstore.Store
		if b, fuzzErr = fsstore.New(filepath.Join(root, "blobs")); fuzzErr != nil {
			return
		}
		var m *boltstore.Store
		if m, fuzzErr = boltstore.New(filepath.Join(root, "meta.db")); fuzzErr != nil {
			return
		}
		fuzzBlobs, fuzzMeta = b, m
		fuzzServer = New(Config{Blobs: b, Meta: m, MaxManifestBytes: 16 << 10, ProtectedTags: []TagRule{{Repo: "*", Tag: "prod"}}})
	})
	if fuzzErr != nil {
		f.Fatal(fuzzErr)
	}
}

// brokenBody delivers n bytes, then fails as a dropped connection does.
type brokenBody struct {
	r io.Reader
}

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// fuzzProgram interprets prog as a sequence of registry requests over two
// repositories, a few tags and slices of payload: monolithic and chunked
// uploads (right and wrong digests and ranges, bodies that break off),
// status, cancel, mount, manifests that reference existing, missing or
// garbage blobs, and deletes of tags, manifests and blobs.
type fuzzProgram struct {
	t        *testing.T
	s        *Server
	prog     []byte
	payload  []byte
	sessions []fuzzSession
	blobs    []digest.Digest // pushed or attempted: manifests reference them
	mans     []digest.Digest
}

type fuzzSession struct {
	loc  string
	sent []byte // what the server acknowledged, as far as the test knows
}

var (
	fuzzRepos = []string{"f/a", "f/b"}
	fuzzTags  = []string{"t", "prod", "v1", "sha256-" + digest.FromString("x").Encoded()}
)

func (p *fuzzProgram) next() byte {
	if len(p.prog) == 0 {
		return 0
	}
	b := p.prog[0]
	p.prog = p.prog[1:]
	return b
}

// slice is a payload window chosen by the next two program bytes.
func (p *fuzzProgram) slice() []byte {
	if len(p.payload) == 0 {
		return nil
	}
	a := int(p.next()) % len(p.payload)
	n := int(p.next()) % (len(p.payload) - a + 1)
	return p.payload[a : a+n]
}

func (p *fuzzProgram) do(method, path string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	p.s.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		p.t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return rec
}

func (p *fuzzProgram) run() {
	for len(p.prog) > 0 {
		op := p.next()
		repo := fuzzRepos[int(op>>4)%len(fuzzRepos)]
		switch op % 12 {
		case 0: // monolithic POST ?digest=, right or wrong
			b := p.slice()
			d := digest.FromBytes(b)
			if p.next()%4 == 0 {
				d = digest.FromBytes(append(b, 'x'))
			}
			p.blobs = append(p.blobs, d)
			p.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(b))
		case 1: // open a session
			rec := p.do("POST", "/v2/"+repo+"/blobs/uploads/", nil)
			if loc := rec.Header().Get("Location"); rec.Code == http.StatusAccepted && loc != "" {
				p.sessions = append(p.sessions, fuzzSession{loc: loc})
			}
		case 2, 3: // PATCH a chunk: right, wrong or no Content-Range; maybe broken off
			if len(p.sessions) == 0 {
				continue
			}
			i := int(p.next()) % len(p.sessions)
			ses := &p.sessions[i]
			b := p.slice()
			mode := p.next()
			var hdr []string
			switch mode % 3 {
			case 0:
				hdr = []string{"Content-Range", fmt.Sprintf("%d-%d", len(ses.sent), len(ses.sent)+len(b)-1)}
			case 1:
				hdr = []string{"Content-Range", fmt.Sprintf("%d-%d", int(mode), int(mode)+len(b))}
			}
			var body io.Reader = bytes.NewReader(b)
			broken := mode&8 != 0
			if broken {
				body = &brokenBody{r: bytes.NewReader(b)}
			}
			rec := p.do("PATCH", ses.loc, body, hdr...)
			// A chunk is appended when accepted, and kept when it arrived
			// whole but the connection then broke; otherwise nothing changes.
			if rec.Code == http.StatusAccepted || (broken && rec.Code == http.StatusBadRequest) {
				ses.sent = append(ses.sent, b...)
			}
			st := p.do("GET", ses.loc, nil)
			want := fmt.Sprintf("0-%d", max(len(ses.sent)-1, 0))
			if st.Code != http.StatusNoContent || st.Header().Get("Range") != want {
				p.t.Fatalf("after PATCH (%d, %q): status %d Range %q, want %q", rec.Code, hdr, st.Code, st.Header().Get("Range"), want)
			}
		case 4: // close a session with PUT ?digest=, right or wrong
			if len(p.sessions) == 0 {
				continue
			}
			i := int(p.next()) % len(p.sessions)
			ses := p.sessions[i]
			d := digest.FromBytes(ses.sent)
			if p.next()%4 == 0 {
				d = digest.FromString("wrong")
			}
			p.blobs = append(p.blobs, d)
			rec := p.do("PUT", ses.loc+"?digest="+d.String(), nil)
			if rec.Code == http.StatusCreated {
				p.sessions = append(p.sessions[:i], p.sessions[i+1:]...)
			}
		case 5: // cancel a session
			if len(p.sessions) == 0 {
				continue
			}
			i := int(p.next()) % len(p.sessions)
			p.do("DELETE", p.sessions[i].loc, nil)
			p.sessions = append(p.sessions[:i], p.sessions[i+1:]...)
		case 6: // mount a blob from the other repository
			if len(p.blobs) == 0 {
				continue
			}
			d := p.blobs[int(p.next())%len(p.blobs)]
			from := fuzzRepos[(int(op>>4)+1)%len(fuzzRepos)]
			p.do("POST", "/v2/"+repo+"/blobs/uploads/?mount="+d.String()+"&from="+from, nil)
		case 7, 8: // a manifest over known blobs (some may be missing), by tag or digest
			body := p.manifest()
			ref := fuzzTags[int(p.next())%len(fuzzTags)]
			if p.next()%3 == 0 {
				ref = digest.FromBytes(body).String()
			}
			rec := p.do("PUT", "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
			if rec.Code == http.StatusCreated {
				p.mans = append(p.mans, digest.FromBytes(body))
			}
		case 9: // the payload itself as a manifest
			p.do("PUT", "/v2/"+repo+"/manifests/"+fuzzTags[int(p.next())%len(fuzzTags)], bytes.NewReader(p.slice()), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
		case 10: // delete a tag or a manifest
			ref := fuzzTags[int(p.next())%len(fuzzTags)]
			if len(p.mans) > 0 && p.next()%2 == 0 {
				ref = p.mans[int(p.next())%len(p.mans)].String()
			}
			p.do("DELETE", "/v2/"+repo+"/manifests/"+ref, nil)
		case 11: // delete a blob
			if len(p.blobs) == 0 {
				continue
			}
			p.do("DELETE", "/v2/"+repo+"/blobs/"+p.blobs[int(p.next())%len(p.blobs)].String(), nil)
		}
	}
}

// manifest builds an image manifest whose config and layers are blobs the
// program pushed or tried to push, sizes included, and that sometimes has
// a subject.
func (p *fuzzProgram) manifest() []byte {
	desc := func() string {
		if len(p.blobs) == 0 {
			return fmt.Sprintf(`{"mediaType":"application/octet-stream","digest":%q,"size":0}`, digest.FromString(""))
		}
		d := p.blobs[int(p.next())%len(p.blobs)]
		size := int64(0)
		if st, err := fuzzBlobs.Stat(context.Background(), d); err == nil {
			size = st
		}
		return fmt.Sprintf(`{"mediaType":"application/octet-stream","digest":%q,"size":%d}`, d, size)
	}
	layers := desc()
	for range int(p.next()) % 3 {
		layers += "," + desc()
	}
	subject := ""
	if len(p.mans) > 0 && p.next()%2 == 0 {
		subject = fmt.Sprintf(`,"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":1}`, p.mans[int(p.next())%len(p.mans)])
	}
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x-fuzz","config":%s,"layers":[%s]%s}`, desc(), layers, subject))
}

// FuzzStoreConsistency runs fuzzed request sequences against the manifest
// and upload handlers on the stores `airlock registry serve` uses, and
// after each sequence checks with store.Fsck (re-hashing every blob) that
// no request, however wrong or broken off, left the stores inconsistent.
func FuzzStoreConsistency(f *testing.F) {
	fuzzStores(f)
	seed := func(ops ...byte) []byte { return ops }
	payload := []byte(`{"schemaVersion":2} layer bytes, more layer bytes, and some more`)
	f.Add(seed(0, 3, 20, 1, 1, 2, 0, 0, 10, 0, 2, 0, 10, 20, 0, 4, 0, 1, 7, 0, 0, 0, 0, 1), payload)
	f.Add(seed(1, 2, 0, 5, 30, 8, 4, 0, 1), payload)            // a chunk broken off mid-way, then commit
	f.Add(seed(1, 2, 0, 0, 40, 1, 2, 0, 9, 9, 1), payload)      // wrong Content-Range
	f.Add(seed(0, 0, 64, 0, 7, 0, 0, 0, 1, 1, 0), payload)      // a manifest over a pushed blob, tagged prod
	f.Add(seed(0, 0, 64, 3, 7, 0, 0, 0, 0, 0), payload)         // a manifest over a blob whose push failed
	f.Add(seed(9, 0, 1, 20, 9, 3, 0, 255), payload)             // malformed manifests
	f.Add(seed(0, 5, 9, 1, 16, 6, 0, 11, 0, 10, 1, 1), payload) // mount, then deletes
	f.Fuzz(func(t *testing.T, prog, payload []byte) {
		if len(prog) > 256 || len(payload) > 64<<10 {
			return
		}
		p := &fuzzProgram{t: t, s: fuzzServer, prog: prog, payload: payload}
		p.run()
		for _, ses := range p.sessions {
			p.do("DELETE", ses.loc, nil)
		}
		rep, err := store.Fsck(context.Background(), fuzzBlobs, fuzzMeta, store.FsckOptions{VerifyContent: true})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("fsck after the sequence: %v", rep.Problems)
		}
	})
}
