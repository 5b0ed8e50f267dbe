package server

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// route names label metrics and the access log; they are a closed set.
const (
	routeBase      = "base"
	routeCatalog   = "catalog"
	routeBlob      = "blob"
	routeUploads   = "uploads" // POST .../blobs/uploads/
	routeUpload    = "upload"  // .../blobs/uploads/<id>
	routeManifest  = "manifest"
	routeTags      = "tags"
	routeReferrers = "referrers"
	routeUnknown   = "unknown"
)

// route is a parsed API path.
type route struct {
	name string
	repo string
	ref  string // digest, tag or upload id, per route
}

// The distribution grammar
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pulling-manifests).
var (
	componentRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	tagRe       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	uploadIDRe  = regexp.MustCompile(`^[A-Za-z0-9_.=-]{1,128}$`)
)

const maxNameLength = 255

// parseRoute places a request path. Repository names may have many
// components, so the path is read from the right: the last two or three
// segments name the endpoint and everything before them is the name.
// Escaped characters never occur in valid names, references or upload
// IDs, so a path with any is refused: that closes encoded slashes and dots.
func parseRoute(r *http.Request) (route, error) {
	p := r.URL.EscapedPath()
	if p == "/v2" || p == "/v2/" {
		return route{name: routeBase}, nil
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{name: routeUnknown}, errorf(CodeUnsupported, http.StatusNotFound, "not an OCI distribution API path")
	}
	if strings.Contains(rest, "%") {
		return route{name: routeUnknown}, errorf(CodeNameInvalid, 0, "escaped characters in path")
	}
	if rest == "_catalog" {
		return route{name: routeCatalog}, nil
	}
	seg := strings.Split(rest, "/")
	n := len(seg)
	at := func(i int) string { // i counts from the end: 1 is the last
		if n-i < 0 {
			return ""
		}
		return seg[n-i]
	}
	var rt route
	var nameEnd int // segments belonging to the name
	switch {
	case at(3) == "blobs" && at(2) == "uploads":
		rt, nameEnd = route{name: routeUpload, ref: at(1)}, n-3
		if rt.ref == "" {
			rt.name = routeUploads
		}
	case at(2) == "blobs" && at(1) == "uploads":
		rt, nameEnd = route{name: routeUploads}, n-2
	case at(2) == "blobs":
		rt, nameEnd = route{name: routeBlob, ref: at(1)}, n-2
	case at(2) == "manifests":
		rt, nameEnd = route{name: routeManifest, ref: at(1)}, n-2
	case at(2) == "tags" && at(1) == "list":
		rt, nameEnd = route{name: routeTags}, n-2
	case at(2) == "referrers":
		rt, nameEnd = route{name: routeReferrers, ref: at(1)}, n-2
	default:
		return route{name: routeUnknown}, errorf(CodeUnsupported, http.StatusNotFound, "unknown API path")
	}
	if nameEnd < 1 {
		return route{name: routeUnknown}, errorf(CodeNameInvalid, 0, "missing repository name")
	}
	rt.repo = strings.Join(seg[:nameEnd], "/")
	if err := validName(rt.repo); err != nil {
		return route{name: rt.name}, err
	}
	if rt.name == routeUpload && !uploadIDRe.MatchString(rt.ref) {
		return rt, errorf(CodeBlobUploadUnknown, 0, "invalid upload id")
	}
	return rt, nil
}

func validName(name string) error {
	if len(name) > maxNameLength {
		return &Error{Code: CodeNameInvalid, Status: http.StatusBadRequest, Message: "repository name longer than 255 characters"}
	}
	for _, c := range strings.Split(name, "/") {
		if !componentRe.MatchString(c) {
			return &Error{Code: CodeNameInvalid, Status: http.StatusBadRequest, Message: "invalid repository name", Detail: map[string]string{"name": name}}
		}
	}
	return nil
}

// parseDigest accepts only the algorithms the registry stores (sha256 and
// sha512), in lowercase hex of the right length.
func parseDigest(s string) (digest.Digest, error) {
	bad := &Error{Code: CodeDigestInvalid, Status: http.StatusBadRequest, Message: "invalid digest", Detail: map[string]string{"digest": s}}
	alg, hex, ok := strings.Cut(s, ":")
	if !ok {
		return "", bad
	}
	var want int
	switch digest.Algorithm(alg) {
	case digest.SHA256:
		want = 64
	case digest.SHA512:
		want = 128
	default:
		bad.Message = "unsupported digest algorithm (sha256 and sha512 are)"
		return "", bad
	}
	if len(hex) != want {
		return "", bad
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", bad
		}
	}
	return digest.Digest(s), nil
}

// reference is a manifest reference: a digest or a tag.
type reference struct {
	tag    string
	digest digest.Digest
}

func parseReference(s string) (reference, error) {
	if strings.Contains(s, ":") {
		d, err := parseDigest(s)
		return reference{digest: d}, err
	}
	if !tagRe.MatchString(s) {
		return reference{}, &Error{Code: CodeManifestInvalid, Status: http.StatusBadRequest, Message: "invalid tag", Detail: map[string]string{"tag": s}}
	}
	return reference{tag: s}, nil
}

// Target is what a request addresses: the API route ("blob", "manifest",
// "upload", "uploads", "tags", "referrers", "catalog", "base"), the
// repository and the reference. Authorisation middleware must decide on
// exactly what the server will act on, so it asks ParseTarget rather than
// parsing paths itself.
type Target struct {
	Route string
	Repo  string
	Ref   string
}

// ParseTarget parses a request path as the server does. An error means the
// server will refuse the request whatever its credentials.
func ParseTarget(r *http.Request) (Target, error) {
	rt, err := parseRoute(r)
	return Target{Route: rt.name, Repo: rt.repo, Ref: rt.ref}, err
}
