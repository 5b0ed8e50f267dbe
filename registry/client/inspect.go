package client

import (
	"context"
	"fmt"

	"github.com/airlock-dev/airlock/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Inspection is what Inspect learns about a release without downloading
// any layer.
type Inspection struct {
	*Release
	// Referrers are the manifests whose subject is the release:
	// signatures, SBOMs, attestations. Read through the OCI 1.1 referrers
	// API, or the referrers tag schema where the registry lacks it.
	Referrers []ocispec.Descriptor
	// ReferrersError says why referrers could not be listed; the rest of
	// the inspection is still valid.
	ReferrersError string
	// SignatureTag is cosign v2's signature manifest for the release,
	// "sha256-<hex>.sig", when it exists (it is a tag, not a referrer).
	SignatureTag *ocispec.Descriptor `json:"signatureTag,omitempty"`
}

// Inspect reads a release's manifest, config and referrers.
func (c *Client) Inspect(ctx context.Context, ref registry.Ref) (*Inspection, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, err
	}
	rel, err := c.fetchRelease(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	in := &Inspection{Release: rel, Referrers: []ocispec.Descriptor{}}
	err = repo.Referrers(ctx, rel.Descriptor, "", func(rs []ocispec.Descriptor) error {
		in.Referrers = append(in.Referrers, rs...)
		return nil
	})
	if err != nil {
		in.ReferrersError = fmt.Sprintf("listing referrers: %v", mapErr(err))
	}
	d := rel.Descriptor.Digest
	if sig, err := repo.Resolve(ctx, d.Algorithm().String()+"-"+d.Encoded()+".sig"); err == nil {
		in.SignatureTag = &sig
	}
	return in, nil
}
