package registry

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Ref names a release in a registry: HOST[:PORT]/REPO[:TAG][@DIGEST].
//
// Unlike docker, Airlock never guesses a registry: a release reference
// without a host is an error, because pushing a model to Docker Hub by
// accident is worse than typing a host name.
type Ref struct {
	Registry   string // host[:port]
	Repository string
	Tag        string
	Digest     digest.Digest
}

// The grammar is distribution's reference grammar
// (https://github.com/distribution/reference/blob/main/reference.go).
var (
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	hostPattern   = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]+)?$`)
)

// ParseRef parses a reference. It fails with an error wrapping
// ErrInvalidReference that says which part is wrong.
func ParseRef(s string) (Ref, error) {
	bad := func(format string, a ...any) (Ref, error) {
		return Ref{}, fmt.Errorf("%w %q: %s", ErrInvalidReference, s, fmt.Sprintf(format, a...))
	}
	rest := s
	var r Ref
	if i := strings.Index(rest, "@"); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return bad("digest: %v", err)
		}
		r.Digest = d
		rest = rest[:i]
	}
	slash := strings.Index(rest, "/")
	if slash < 0 {
		return bad("no registry host; write it as HOST/REPOSITORY[:TAG], for example localhost:5000/%s", rest)
	}
	host := rest[:slash]
	if !strings.ContainsAny(host, ".:[") && host != "localhost" {
		return bad("%q is not a registry host; write it as HOST/REPOSITORY[:TAG], for example localhost:5000/%s", host, rest)
	}
	if !hostPattern.MatchString(host) {
		return bad("invalid registry host %q", host)
	}
	r.Registry = host
	repo := rest[slash+1:]
	// A tag is after the last colon that follows the last slash.
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		r.Tag = repo[i+1:]
		repo = repo[:i]
		if !tagPattern.MatchString(r.Tag) {
			return bad("invalid tag %q (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')", r.Tag)
		}
	}
	if repo == "" {
		return bad("empty repository")
	}
	for _, c := range strings.Split(repo, "/") {
		if !pathComponent.MatchString(c) {
			return bad("invalid repository component %q (lowercase letters, digits and separators '.', '_', '__', '-')", c)
		}
	}
	if len(host)+1+len(repo) > 255 {
		return bad("repository name longer than 255 characters")
	}
	r.Repository = repo
	return r, nil
}

// String formats the reference as it was parsed.
func (r Ref) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Name is HOST/REPOSITORY, without tag or digest.
func (r Ref) Name() string { return r.Registry + "/" + r.Repository }

// Reference is what a registry resolves: the digest when there is one
// (a digest pins content, a tag only points at it), else the tag.
func (r Ref) Reference() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// WithDigest returns the reference pinned to d, keeping the tag for display.
func (r Ref) WithDigest(d digest.Digest) Ref {
	r.Digest = d
	return r
}

// Loopback reports whether the registry is on this machine, where Airlock
// speaks plain HTTP without being asked (DESIGN.md §2a).
func (r Ref) Loopback() bool {
	host := r.Registry
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
