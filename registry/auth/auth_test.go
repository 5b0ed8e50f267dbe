package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
	"oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

func htpasswd(t *testing.T, users ...string) map[string][]byte {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":" + string(h) + "\n")
	}
	m, err := LoadHtpasswd(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// start serves a real registry (go-containerregistry's) behind the
// middleware.
func start(t *testing.T, cfg Config) string {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Wrap(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// repo is an oras-go client following the token flow with user's password.
func repo(t *testing.T, host, name, user string) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	c := &orasauth.Client{Cache: orasauth.NewCache()}
	if user != "" {
		c.Credential = orasauth.StaticCredential(host, orasauth.Credential{Username: user, Password: user + "-pw"})
	}
	r.Client = c
	return r
}

func pushBlob(r *remote.Repository, content string) error {
	b := []byte(content)
	return r.Blobs().Push(context.Background(), ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(len(b))}, bytes.NewReader(b))
}

func status(err error) int {
	var e *errcode.ErrorResponse
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func TestTokenFlowAndRules(t *testing.T) {
	host := start(t, Config{
		Users:         htpasswd(t, "alice", "ci", "mallory"),
		AnonymousPull: true,
		Rules: []Rule{
			{Repos: "team-a/**", Users: []string{"alice"}, Actions: []Action{Pull, Push, Tag, Delete}},
			{Repos: "team-a/**", Users: []string{"ci"}, Actions: []Action{Pull, Push}},
		},
	})
	ctx := context.Background()
	if err := pushBlob(repo(t, host, "team-a/bot", "alice"), "weights"); err != nil {
		t.Fatalf("alice push: %v", err)
	}
	// Anonymous may pull, not push.
	if ok, err := repo(t, host, "team-a/bot", "").Blobs().Exists(ctx, ocispec.Descriptor{Digest: digest.FromString("weights"), Size: 7}); err != nil || !ok {
		t.Fatalf("anonymous pull: %v %v", ok, err)
	}
	if err := pushBlob(repo(t, host, "team-a/bot", ""), "x"); status(err) != http.StatusUnauthorized {
		t.Fatalf("anonymous push: %v", err)
	}
	// mallory authenticates but has no rule: 403, not 401.
	if err := pushBlob(repo(t, host, "team-a/bot", "mallory"), "x"); status(err) != http.StatusForbidden {
		t.Fatalf("mallory push: %v", err)
	}
	// alice has no rule outside team-a.
	if err := pushBlob(repo(t, host, "team-b/bot", "alice"), "x"); status(err) != http.StatusForbidden {
		t.Fatalf("alice push to team-b: %v", err)
	}
	// ci may push content and manifests by digest, not move tags.
	ci := repo(t, host, "team-a/bot", "ci")
	must(t, pushBlob(ci, "{}"))
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + digest.FromString("{}").String() + `","size":2},"layers":[]}`)
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	must(t, ci.Manifests().Push(ctx, md, bytes.NewReader(m)))
	if err := ci.Tag(ctx, md, "prod"); status(err) != http.StatusForbidden {
		t.Fatalf("ci tagging prod: %v", err)
	}
	must(t, repo(t, host, "team-a/bot", "alice").Tag(ctx, md, "prod"))
	// A wrong password is refused even where anonymous pull is allowed,
	// at the API and at the token endpoint.
	for _, path := range []string{"/v2/team-a/bot/manifests/prod", TokenPath} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
		req.SetBasicAuth("alice", "nope")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong password: %d", path, resp.StatusCode)
		}
	}
}

func TestNoAnonymousAccess(t *testing.T) {
	host := start(t, Config{Users: htpasswd(t, "alice")})
	resp, err := http.Get("http://" + host + "/v2/")
	must(t, err)
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, `Bearer realm="http://`+host+`/v2/token"`) {
		t.Fatalf("GET /v2/: %d %q", resp.StatusCode, ch)
	}
	resp, err = http.Get("http://" + host + "/v2/team/bot/tags/list")
	must(t, err)
	var body struct{ Errors []struct{ Code string } }
	must(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(body.Errors) != 1 || body.Errors[0].Code != "UNAUTHORIZED" ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="repository:team/bot:pull"`) {
		t.Fatalf("anonymous tag list: %d %+v %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	// With no rules, any authenticated user may do everything.
	must(t, pushBlob(repo(t, host, "team/bot", "alice"), "w"))
}

func TestTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, err := New(Config{Users: htpasswd(t, "alice"), Now: func() time.Time { return now }, TokenTTL: time.Minute})
	must(t, err)
	tok, _ := a.issueToken("alice")
	if u, err := a.verifyToken(tok); err != nil || u != "alice" {
		t.Fatalf("fresh token: %q %v", u, err)
	}
	if _, err := a.verifyToken(tok[:len(tok)-2] + "xx"); err == nil {
		t.Fatal("tampered signature accepted")
	}
	other, _ := New(Config{Users: a.cfg.Users})
	if _, err := other.verifyToken(tok); err == nil {
		t.Fatal("token from another key accepted")
	}
	now = now.Add(2 * time.Minute)
	if _, err := a.verifyToken(tok); err == nil {
		t.Fatal("expired token accepted")
	}
}

func TestLoadHtpasswd(t *testing.T) {
	for name, in := range map[string]string{
		"md5":       "bob:$apr1$abc$def\n",
		"sha1":      "bob:{SHA}abc=\n",
		"no colon":  "bob\n",
		"duplicate": "bob:$2y$05$abcdefghijklmnopqrstuu1234567890123456789012345678901\nbob:$2y$05$abcdefghijklmnopqrstuu1234567890123456789012345678901\n",
	} {
		if _, err := LoadHtpasswd(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		method, path string
		want         string
	}{
		{"GET", "/v2/", ""},
		{"GET", "/v2/a/b/manifests/v1", "a/b:pull"},
		{"HEAD", "/v2/a/blobs/sha256:abc", "a:pull"},
		{"PUT", "/v2/a/b/manifests/prod", "a/b:push a/b:tag"},
		{"PUT", "/v2/a/b/manifests/sha256:abc", "a/b:push"},
		{"POST", "/v2/a/blobs/uploads/?mount=sha256:abc&from=c/d", "a:push c/d:pull"},
		{"PATCH", "/v2/a/blobs/uploads/123", "a:push"},
		{"DELETE", "/v2/x/manifests/sha256:abc", "x:delete"},
		{"GET", "/v2/x/referrers/sha256:abc", "x:pull"},
		{"GET", "/v2/x/tags/list", "x:pull"},
		{"GET", "/v2/_catalog", ":pull"},
		{"GET", "/v2/nothing-here", ":pull"},
		// Read from the right, as the server does: the repository is
		// a/blobs/uploads/b and a tag is being set.
		{"PUT", "/v2/a/blobs/uploads/b/manifests/t", "a/blobs/uploads/b:push a/blobs/uploads/b:tag"},
		{"GET", "/v2/a%2fb/manifests/t", ":pull"},
		{"GET", "/v2/../x/manifests/t", ":pull"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		var got []string
		for _, n := range Classify(r) {
			got = append(got, n.Repo+":"+string(n.Action))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, strings.Join(got, " "), tc.want)
		}
	}
}

func TestRuleGlobs(t *testing.T) {
	a, err := New(Config{Users: map[string][]byte{}, Rules: []Rule{
		{Repos: "team-a/*", Users: []string{"*"}, Actions: []Action{Pull}},
		{Repos: "models/**", Users: []string{"bob"}, Actions: []Action{Push}},
	}})
	must(t, err)
	for _, tc := range []struct {
		user, repo string
		act        Action
		want       bool
	}{
		{"x", "team-a/bot", Pull, true},
		{"x", "team-a/bot/sub", Pull, false},
		{Anonymous, "team-a/bot", Pull, false},
		{"bob", "models/a/b/c", Push, true},
		{"bob", "modelsx/a", Push, false},
		{"bob", "models/a", Delete, false},
	} {
		if got := a.allowed(tc.user, tc.repo, tc.act); got != tc.want {
			t.Errorf("%s %s %s: %v", tc.user, tc.act, tc.repo, got)
		}
	}
	if _, err := New(Config{Rules: []Rule{{Repos: "a", Users: []string{"x"}, Actions: []Action{"own"}}}}); err == nil {
		t.Error("unknown action accepted")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
