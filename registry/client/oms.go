package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/airlock-dev/airlock/registry"
)

// maxOMSBundle bounds the OMS bundle pull reads: one entry per file of the
// release, so a few KiB to a few hundred.
const maxOMSBundle = 16 << 20

// writeOMS finds the release's OpenSSF Model Signing bundle among its
// referrers (airlock sign attaches one) and writes it to dir/model.sig, so
// that model_signing verify can check the pulled directory. It returns the
// path written, or "" when the release has no OMS bundle. Not being able
// to list referrers is not an error: the release is simply not known to
// be OMS-signed.
func (c *Client) writeOMS(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor, dir string) (string, error) {
	var cands []ocispec.Descriptor
	err := repo.Referrers(ctx, subject, "", func(rs []ocispec.Descriptor) error {
		for _, r := range rs {
			// Tag-schema indexes written by go-containerregistry carry the
			// empty config's media type and no annotations: fetch those.
			switch {
			case r.ArtifactType != "" && r.ArtifactType != registry.MediaTypeSigstoreBundle && r.ArtifactType != ocispec.MediaTypeEmptyJSON:
			case r.Annotations[registry.AnnotationBundlePredicateType] != "" && r.Annotations[registry.AnnotationBundlePredicateType] != registry.PredicateTypeOMS:
			default:
				cands = append(cands, r)
			}
		}
		return nil
	})
	if err != nil {
		return "", nil
	}
	for _, d := range cands {
		b, err := fetchOMS(ctx, repo, d)
		if err != nil {
			return "", err
		}
		if b == nil {
			continue
		}
		name := filepath.Join(dir, registry.OMSFile)
		if err := os.WriteFile(name, b, 0o644); err != nil {
			return "", err
		}
		return name, nil
	}
	return "", nil
}

// fetchOMS returns the bundle a referrer holds when it is an OMS
// signature, nil when it is something else.
func fetchOMS(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor) ([]byte, error) {
	rc, err := repo.Fetch(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("fetching referrer %s: %w", d.Digest, mapErr(err))
	}
	raw, err := readVerified(rc, d, 4<<20)
	if err != nil {
		return nil, fmt.Errorf("referrer %s: %w", d.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil // not a manifest: not ours to judge here
	}
	if m.Annotations[registry.AnnotationBundlePredicateType] != registry.PredicateTypeOMS || len(m.Layers) != 1 {
		return nil, nil
	}
	l := m.Layers[0]
	if l.MediaType != registry.MediaTypeSigstoreBundle {
		return nil, nil
	}
	if l.Size > maxOMSBundle {
		return nil, fmt.Errorf("OMS bundle %s: %d bytes, over the %d limit", l.Digest, l.Size, maxOMSBundle)
	}
	lrc, err := repo.Blobs().Fetch(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("fetching OMS bundle %s: %w", l.Digest, mapErr(err))
	}
	b, err := readVerified(lrc, l, maxOMSBundle)
	if err != nil {
		return nil, fmt.Errorf("OMS bundle %s: %w", l.Digest, err)
	}
	if len(b) == 0 {
		return nil, errors.New("empty OMS bundle")
	}
	return b, nil
}
