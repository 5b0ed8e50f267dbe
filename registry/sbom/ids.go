package sbom

import (
	"crypto/sha1"
	"fmt"
	"path"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/opencontainers/go-digest"
)

// PURL returns the package URL of an OCI artifact, as the purl spec's oci
// type writes it
// (https://github.com/package-url/purl-spec/blob/main/types-doc/oci-definition.md):
// the name is the last component of the repository, lowercased; the
// version is the digest with its colon encoded; repository_url, when repo
// (HOST/REPOSITORY) is known, says where the artifact was found. With no
// repository the purl names the artifact anywhere, as the spec intends.
func PURL(name, repo string, d digest.Digest) string {
	if repo != "" {
		name = path.Base(repo)
	}
	s := "pkg:oci/" + escape(strings.ToLower(name), "") + "@" + escape(d.String(), "")
	if repo != "" {
		// ':' and '/' stay as the spec's examples write them
		// (repository_url=docker.io/library/debian, localhost:5000/app).
		s += "?repository_url=" + escape(repo, ":/")
	}
	return s
}

// escape percent-encodes everything but unreserved characters and keep.
func escape(s, keep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// namespaceURL is RFC 9562's name space for URLs (Appendix A.2).
const namespaceURL = "\x6b\xa7\xb8\x11\x9d\xad\x11\xd1\x80\xb4\x00\xc0\x4f\xd4\x30\xc8"

// SerialNumber is the BOM serial number of a release: a name-based UUID
// (version 5, RFC 9562 §5.5) of https://airlock.dev/sbom/DIGEST in the URL
// name space. Anyone can recompute it from the digest, and the BOM of one
// release has the same serial number wherever and whenever it is built.
func SerialNumber(d digest.Digest) string {
	h := sha1.New()
	h.Write([]byte(namespaceURL))
	h.Write([]byte("https://airlock.dev/sbom/" + d.String()))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// hashOf turns a digest into a CycloneDX hash. Digests of an algorithm
// CycloneDX does not name, or malformed ones, give false.
func hashOf(d digest.Digest) (cdx.Hash, bool) {
	if d.Validate() != nil {
		return cdx.Hash{}, false
	}
	var alg cdx.HashAlgorithm
	switch d.Algorithm() {
	case digest.SHA256:
		alg = cdx.HashAlgoSHA256
	case digest.SHA384:
		alg = cdx.HashAlgoSHA384
	case digest.SHA512:
		alg = cdx.HashAlgoSHA512
	default:
		return cdx.Hash{}, false
	}
	return cdx.Hash{Algorithm: alg, Value: d.Encoded()}, true
}

// hashes is hashOf as the optional list a component carries.
func hashes(d digest.Digest) *[]cdx.Hash {
	h, ok := hashOf(d)
	if !ok {
		return nil
	}
	return &[]cdx.Hash{h}
}
