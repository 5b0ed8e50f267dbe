package registry

import (
	"context"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The small interfaces below have the same method sets as oras-go's content
// interfaces, so an oras-go repository or store satisfies them, while
// packages that only need one verb depend on no SDK.

// Resolver turns a tag or digest into the descriptor of a manifest.
type Resolver interface {
	Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error)
}

// Fetcher reads content by descriptor.
type Fetcher interface {
	Fetch(ctx context.Context, target ocispec.Descriptor) (io.ReadCloser, error)
}

// Pusher writes content whose descriptor is known in advance.
type Pusher interface {
	Push(ctx context.Context, expected ocispec.Descriptor, content io.Reader) error
}

// ReferrerLister lists the manifests whose subject is desc (OCI 1.1
// referrers), filtered by artifactType when it is not empty.
type ReferrerLister interface {
	Referrers(ctx context.Context, desc ocispec.Descriptor, artifactType string, fn func(referrers []ocispec.Descriptor) error) error
}
