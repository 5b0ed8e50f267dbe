package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/pack"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"
)

// WriteLayout stores a packed release in an OCI image layout directory
// (image-spec image-layout.md), tagged when tag is not empty. Existing
// blobs are kept, so a layout can hold many releases.
func WriteLayout(ctx context.Context, art *pack.Artifact, dir, tag string) (ocispec.Descriptor, error) {
	store, err := oci.New(dir)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("opening layout %s: %w", dir, err)
	}
	put := func(desc ocispec.Descriptor, open func() (*os.File, error), b []byte) error {
		ok, err := store.Exists(ctx, desc)
		if err != nil || ok {
			return err
		}
		if b != nil {
			return store.Push(ctx, desc, bytes.NewReader(b))
		}
		f, err := open()
		if err != nil {
			return err
		}
		defer f.Close()
		return store.Push(ctx, desc, f)
	}
	for _, l := range art.Layers {
		abs := l.File.Abs
		if err := put(l.Descriptor, func() (*os.File, error) { return os.Open(abs) }, nil); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("writing %s to layout: %w", l.File.Path, err)
		}
	}
	if err := put(art.ConfigDescriptor(), nil, art.Config); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing config to layout: %w", err)
	}
	desc := art.Descriptor()
	if err := put(desc, nil, art.ManifestJSON); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing manifest to layout: %w", err)
	}
	if tag != "" {
		if err := store.Tag(ctx, desc, tag); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("tagging %s in layout: %w", tag, err)
		}
	}
	return desc, nil
}

// PushLayout copies a release from an OCI image layout to a registry with
// oras.Copy, which skips blobs the registry has and moves several at once.
// from names the release in the layout (a tag or digest); empty means the
// layout's only manifest.
func (c *Client) PushLayout(ctx context.Context, dir, from string, ref registry.Ref) (*PushResult, error) {
	store, err := oci.NewWithContext(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("opening layout %s: %w", dir, err)
	}
	if from == "" {
		var tags []string
		if err := store.Tags(ctx, "", func(ts []string) error { tags = append(tags, ts...); return nil }); err != nil {
			return nil, err
		}
		if len(tags) != 1 {
			return nil, fmt.Errorf("layout %s has %d tags %v; name one as %s:TAG", dir, len(tags), tags, dir)
		}
		from = tags[0]
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, err
	}
	res := &PushResult{}
	var mu sync.Mutex // oras calls the hooks from several goroutines
	opts := oras.CopyOptions{}
	opts.Concurrency = c.opts.Concurrency
	opts.OnCopySkipped = func(context.Context, ocispec.Descriptor) error {
		mu.Lock()
		defer mu.Unlock()
		res.Skipped++
		return nil
	}
	opts.PostCopy = func(_ context.Context, d ocispec.Descriptor) error {
		mu.Lock()
		defer mu.Unlock()
		res.Uploaded++
		res.Bytes += d.Size
		return nil
	}
	dst := ref.Tag
	if dst == "" {
		dst = from
	}
	desc, err := oras.Copy(ctx, store, from, repo, dst, opts)
	if err != nil {
		return nil, fmt.Errorf("copying %s to %s: %w", from, ref, mapErr(err))
	}
	if ref.Digest != "" && ref.Digest != desc.Digest {
		return nil, fmt.Errorf("%w: layout holds %s, not %s", registry.ErrDigestMismatch, desc.Digest, ref.Digest)
	}
	res.Ref = ref.WithDigest(desc.Digest)
	res.Descriptor = desc
	return res, nil
}
