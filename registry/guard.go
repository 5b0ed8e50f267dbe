package registry

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrTagProtected marks a push that would create or move a protected tag
// and was not allowed: by the TagGuard, or, with no guard configured,
// because a protected tag is immutable once set. The registry answers it
// with DENIED (403).
var ErrTagProtected = errors.New("tag protected")

// TagGuard decides whether a protected tag may point at target. The
// registry asks it at push time, before anything is recorded, so that a
// release reaches an environment tag (prod, staging, v*) only through the
// gate's verdict. previous is the digest the tag points at now, "" when the
// tag is new. A nil error allows the move; any error refuses it (fail
// closed) and should wrap ErrTagProtected when it is a verdict rather than
// a failure to reach one.
type TagGuard interface {
	AllowTag(ctx context.Context, repo, tag string, target ocispec.Descriptor, previous digest.Digest) error
}
