package client

import (
	"context"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/registry"
)

// Resolve returns the descriptor ref names: by digest as given (checked to
// exist), by tag as the registry resolves it now.
func (c *Client) Resolve(ctx context.Context, ref registry.Ref) (ocispec.Descriptor, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := repo.Resolve(ctx, ref.Reference())
	if err != nil {
		return ocispec.Descriptor{}, mapErr(err)
	}
	return desc, nil
}
