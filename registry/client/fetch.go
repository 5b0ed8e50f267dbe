package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/registry"
)

// FetchLayer reads the first layer of the artifact at ref whose media
// type is one of mediaTypes, verified against its digest and at most
// limit bytes: a policy bundle, a small file artifact.
func (c *Client) FetchLayer(ctx context.Context, ref registry.Ref, mediaTypes []string, limit int64) ([]byte, ocispec.Descriptor, error) {
	none := ocispec.Descriptor{}
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, none, err
	}
	desc, rc, err := repo.Manifests().FetchReference(ctx, ref.Reference())
	if err != nil {
		return nil, none, fmt.Errorf("resolving %s: %w", ref, mapErr(err))
	}
	raw, err := readVerified(rc, desc, maxManifest)
	if err != nil {
		return nil, none, fmt.Errorf("reading manifest of %s: %w", ref, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, none, fmt.Errorf("parsing manifest of %s: %w", ref, err)
	}
	for _, l := range m.Layers {
		if !slices.Contains(mediaTypes, l.MediaType) {
			continue
		}
		rc, err := repo.Blobs().Fetch(ctx, l)
		if err != nil {
			return nil, none, fmt.Errorf("fetching %s of %s: %w", l.Digest, ref, mapErr(err))
		}
		b, err := readVerified(rc, l, limit)
		if err != nil {
			return nil, none, fmt.Errorf("reading %s of %s: %w", l.Digest, ref, err)
		}
		return b, l, nil
	}
	return nil, none, fmt.Errorf("%s has no layer of type %s", ref, strings.Join(mediaTypes, " or "))
}
