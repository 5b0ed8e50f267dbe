package client

import (
	"bytes"
	"context"
	"fmt"

	"github.com/airlock-dev/airlock/registry"
)

// Tag points tag at what ref resolves to (a manifest PUT under the new
// tag, as crane tag does). A registry with protected tags may refuse:
// its reason comes back wrapped in registry.ErrUnauthorized (403) or as
// the registry's error.
func (c *Client) Tag(ctx context.Context, ref registry.Ref, tag string) (registry.Ref, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return registry.Ref{}, err
	}
	desc, rc, err := repo.Manifests().FetchReference(ctx, ref.Reference())
	if err != nil {
		return registry.Ref{}, fmt.Errorf("resolving %s: %w", ref, mapErr(err))
	}
	raw, err := readVerified(rc, desc, maxManifest)
	if err != nil {
		return registry.Ref{}, fmt.Errorf("reading manifest of %s: %w", ref, err)
	}
	if err := repo.Manifests().PushReference(ctx, desc, bytes.NewReader(raw), tag); err != nil {
		return registry.Ref{}, fmt.Errorf("tagging %s as %s: %w", desc.Digest, tag, mapErr(err))
	}
	out := ref
	out.Tag, out.Digest = tag, desc.Digest
	return out, nil
}
