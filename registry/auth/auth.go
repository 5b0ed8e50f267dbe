package auth

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Action is what a request does to a repository.
type Action string

// The actions rules grant. Tag is separate from push so that moving
// environment tags can be reserved to a few (the gate's service account).
const (
	Pull   Action = "pull"
	Push   Action = "push"
	Tag    Action = "tag"
	Delete Action = "delete"
)

// Anonymous is the name of the unauthenticated caller in rules and logs.
const Anonymous = "anonymous"

// Rule grants actions on repositories to users. Repos is a glob where *
// matches within one path component and ** across components; Users lists
// names, "*" (any authenticated user) or "anonymous".
type Rule struct {
	Repos   string   `yaml:"repos" json:"repos"`
	Users   []string `yaml:"users" json:"users"`
	Actions []Action `yaml:"actions" json:"actions"`
}

// Config configures an Authorizer.
type Config struct {
	// Users maps user names to bcrypt hashes (see LoadHtpasswd).
	Users map[string][]byte
	// AnonymousPull lets unauthenticated callers pull every repository.
	AnonymousPull bool
	// Rules grant actions; a request is allowed if any rule grants every
	// action it needs. With no rules, every authenticated user may do
	// everything.
	Rules []Rule
	// TokenKey signs bearer tokens; empty means a random key per process
	// (tokens then do not survive a restart, which clients handle by
	// asking again).
	TokenKey []byte
	// TokenTTL is how long an issued token is valid (default 5 minutes).
	TokenTTL time.Duration
	// Service names this registry in token challenges (default "airlock").
	Service string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Authorizer is the middleware. It is safe for concurrent use.
type Authorizer struct {
	cfg   Config
	rules []compiledRule
	mu    sync.Mutex
	// verified caches successful password checks: bcrypt costs tens of
	// milliseconds, and clients send Basic credentials on every request.
	verified map[[32]byte]time.Time
	dummy    []byte
}

type compiledRule struct {
	repos   *regexp.Regexp
	users   []string
	actions []Action
}

// New builds an Authorizer; it fails on an invalid rule.
func New(cfg Config) (*Authorizer, error) {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 5 * time.Minute
	}
	if cfg.Service == "" {
		cfg.Service = "airlock"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.TokenKey) == 0 {
		cfg.TokenKey = make([]byte, 32)
		if _, err := rand.Read(cfg.TokenKey); err != nil {
			return nil, err
		}
	}
	a := &Authorizer{cfg: cfg, verified: map[[32]byte]time.Time{}}
	// A hash of a random password: checking an unknown user's password
	// against it costs what a real check costs, so timing does not tell
	// which names exist.
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword(secret, bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	a.dummy = dummy
	for i, r := range cfg.Rules {
		re, err := globRegexp(r.Repos)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		for _, act := range r.Actions {
			if !slices.Contains([]Action{Pull, Push, Tag, Delete}, act) {
				return nil, fmt.Errorf("rule %d: unknown action %q (pull, push, tag, delete)", i, act)
			}
		}
		if len(r.Users) == 0 {
			return nil, fmt.Errorf("rule %d: no users", i)
		}
		a.rules = append(a.rules, compiledRule{repos: re, users: r.Users, actions: r.Actions})
	}
	return a, nil
}

// globRegexp turns a repository glob into a regular expression.
func globRegexp(glob string) (*regexp.Regexp, error) {
	if glob == "" {
		return nil, errors.New("empty repository pattern")
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case c == '*' && i+1 < len(glob) && glob[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// LoadHtpasswd reads an htpasswd file. Only bcrypt entries ($2a$, $2b$,
// $2y$) are accepted: the other htpasswd schemes are unsalted or broken.
func LoadHtpasswd(r io.Reader) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		name, hash, ok := strings.Cut(s, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("htpasswd line %d: want NAME:HASH", line)
		}
		if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
			return nil, fmt.Errorf("htpasswd line %d (%s): not a bcrypt hash; create it with htpasswd -B", line, name)
		}
		if _, dup := users[name]; dup {
			return nil, fmt.Errorf("htpasswd line %d: user %s appears twice", line, name)
		}
		users[name] = []byte(hash)
	}
	return users, sc.Err()
}

type ctxKey struct{}

// User returns the authenticated caller's name stored in ctx by the
// middleware, or Anonymous.
func User(ctx context.Context) string {
	if u, ok := ctx.Value(ctxKey{}).(string); ok {
		return u
	}
	return Anonymous
}

// errBadCredentials marks credentials that were sent and are wrong: the
// answer is 401 even where anonymous access would be allowed, so that
// `docker login` with a wrong password fails.
var errBadCredentials = errors.New("invalid credentials")

// identify returns the caller from the Authorization header.
func (a *Authorizer) identify(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		return Anonymous, nil
	case strings.HasPrefix(h, "Bearer "):
		return a.verifyToken(strings.TrimPrefix(h, "Bearer "))
	case strings.HasPrefix(h, "Basic "):
		user, pass, ok := r.BasicAuth()
		if !ok || !a.checkPassword(user, pass) {
			return "", errBadCredentials
		}
		return user, nil
	}
	return "", errBadCredentials
}

func (a *Authorizer) checkPassword(user, pass string) bool {
	hash, ok := a.cfg.Users[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(pass))
		return false
	}
	key := sha256.Sum256(append(append(append([]byte(user), 0), hash...), pass...))
	now := a.cfg.Now()
	a.mu.Lock()
	exp, hit := a.verified[key]
	a.mu.Unlock()
	if hit && now.Before(exp) {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	a.mu.Lock()
	if len(a.verified) > 10000 {
		clear(a.verified)
	}
	a.verified[key] = now.Add(time.Minute)
	a.mu.Unlock()
	return true
}

// allowed reports whether user may do act on repo.
func (a *Authorizer) allowed(user, repo string, act Action) bool {
	if user == Anonymous && act == Pull && a.cfg.AnonymousPull {
		return true
	}
	if len(a.rules) == 0 {
		return user != Anonymous
	}
	for _, r := range a.rules {
		if !r.repos.MatchString(repo) || !slices.Contains(r.actions, act) {
			continue
		}
		for _, u := range r.users {
			if u == user || (u == "*" && user != Anonymous) {
				return true
			}
		}
	}
	return false
}

// token is the signed claim set of a bearer token.
type token struct {
	Sub string `json:"sub"`
	Exp int64  `json:"exp"`
	Aud string `json:"aud"`
}

// issueToken signs a token for user: base64url(JSON).base64url(HMAC-SHA256).
func (a *Authorizer) issueToken(user string) (string, time.Time) {
	exp := a.cfg.Now().Add(a.cfg.TokenTTL)
	body, _ := json.Marshal(token{Sub: user, Exp: exp.Unix(), Aud: a.cfg.Service})
	p := base64.RawURLEncoding.EncodeToString(body)
	return p + "." + a.sign(p), exp
}

func (a *Authorizer) sign(payload string) string {
	m := hmac.New(sha256.New, a.cfg.TokenKey)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a *Authorizer) verifyToken(s string) (string, error) {
	p, sig, ok := strings.Cut(s, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(a.sign(p))) {
		return "", errBadCredentials
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return "", errBadCredentials
	}
	var t token
	if json.Unmarshal(raw, &t) != nil || t.Aud != a.cfg.Service || a.cfg.Now().Unix() >= t.Exp {
		return "", errBadCredentials
	}
	return t.Sub, nil
}

// TokenPath is where the token endpoint is served.
const TokenPath = "/v2/token"

// Wrap returns next behind authentication and authorisation, with the
// token endpoint added.
func (a *Authorizer) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == TokenPath {
			a.serveToken(w, r)
			return
		}
		user, err := a.identify(r)
		if err != nil {
			a.deny(w, r, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required: wrong user name, password or token", nil)
			return
		}
		needs := Classify(r)
		if len(needs) == 0 && user == Anonymous && !a.cfg.AnonymousPull && r.URL.Path == "/v2/" {
			// The version check: make clients authenticate, as
			// docker login expects.
			a.deny(w, r, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", nil)
			return
		}
		for _, n := range needs {
			if !a.allowed(user, n.Repo, n.Action) {
				if user == Anonymous {
					a.deny(w, r, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", needs)
				} else {
					a.deny(w, r, http.StatusForbidden, "DENIED", fmt.Sprintf("%s may not %s %s", user, n.Action, n.Repo), nil)
				}
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, user)))
	})
}

// deny answers in the distribution-spec error envelope with a Bearer
// challenge pointing at the token endpoint.
func (a *Authorizer) deny(w http.ResponseWriter, r *http.Request, status int, code, msg string, needs []Need) {
	if status == http.StatusUnauthorized {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		ch := fmt.Sprintf(`Bearer realm="%s://%s%s",service="%s"`, scheme, r.Host, TokenPath, a.cfg.Service)
		if len(needs) > 0 {
			ch += fmt.Sprintf(`,scope="%s"`, scopes(needs))
		}
		w.Header().Set("WWW-Authenticate", ch)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func scopes(needs []Need) string {
	byRepo := map[string][]string{}
	var order []string
	for _, n := range needs {
		if _, ok := byRepo[n.Repo]; !ok {
			order = append(order, n.Repo)
		}
		act := string(n.Action)
		if n.Action == Tag {
			act = string(Push) // docker scopes know pull, push, delete
		}
		if !slices.Contains(byRepo[n.Repo], act) {
			byRepo[n.Repo] = append(byRepo[n.Repo], act)
		}
	}
	var parts []string
	for _, repo := range order {
		parts = append(parts, "repository:"+repo+":"+strings.Join(byRepo[repo], ","))
	}
	return strings.Join(parts, " ")
}

// serveToken implements the token endpoint of the Docker registry token
// flow: Basic credentials (or none, for anonymous pull) in, a short-lived
// bearer token out. Authorisation happens per request, not per scope.
func (a *Authorizer) serveToken(w http.ResponseWriter, r *http.Request) {
	user, err := a.identify(r)
	if err != nil {
		a.deny(w, r, http.StatusUnauthorized, "UNAUTHORIZED", "wrong user name or password", nil)
		return
	}
	if user == Anonymous && !a.cfg.AnonymousPull {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+a.cfg.Service+`"`)
		a.deny(w, r, http.StatusUnauthorized, "UNAUTHORIZED", "credentials required", nil)
		return
	}
	tok, exp := a.issueToken(user)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "access_token": tok,
		"expires_in": int(a.cfg.TokenTTL.Seconds()), "issued_at": exp.Add(-a.cfg.TokenTTL).UTC().Format(time.RFC3339),
	})
}
