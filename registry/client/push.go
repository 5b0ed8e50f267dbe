package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote"
)

// streamThreshold is the size from which a file whose digest is not known
// is uploaded while it is hashed, instead of hashed first: one read of the
// file instead of two. Below it, hashing first costs nothing and lets the
// upload be skipped when the registry has the blob.
const streamThreshold = 16 << 20

// PushOptions configures PushDir. The zero value hashes only small files
// before uploading and writes no creation time.
type PushOptions struct {
	// Created is passed to pack.Build (see pack.Options.Created).
	Created *time.Time
	// Cache remembers file digests so that re-pushing an unchanged file
	// costs one HEAD request.
	Cache *pack.HashCache
	// HashFirst hashes every file before uploading anything, so that no
	// blob the registry already has is sent, at the price of reading
	// large files twice. Use it on slow links.
	HashFirst bool
	// Progress is told of every byte hashed, uploaded or skipped.
	Progress pack.Progress
}

// PushResult says what a push did.
type PushResult struct {
	Ref        registry.Ref       // the reference pushed, pinned to the manifest digest
	Descriptor ocispec.Descriptor // the manifest
	Uploaded   int                // blobs sent
	Skipped    int                // blobs the registry already had
	Bytes      int64              // bytes sent
}

// PushArtifact pushes a packed release: layers (in parallel, skipping
// those the registry has), the config, then the manifest, tagged with
// ref.Tag when there is one.
func (c *Client) PushArtifact(ctx context.Context, art *pack.Artifact, ref registry.Ref, progress pack.Progress) (*PushResult, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, err
	}
	res := &PushResult{}
	var uploaded, skipped atomic.Int64
	var sent atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	for _, l := range art.Layers {
		g.Go(func() error {
			up, err := c.pushFile(gctx, repo, l.Descriptor, l.File.Abs, l.File.Path, progress)
			if err != nil {
				return err
			}
			if up {
				uploaded.Add(1)
				sent.Add(l.Size)
			} else {
				skipped.Add(1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res.Uploaded, res.Skipped, res.Bytes = int(uploaded.Load()), int(skipped.Load()), sent.Load()
	return c.finishPush(ctx, repo, art, ref, res)
}

// PushDir packs a loaded release and pushes it in one pass: small files
// and files the cache knows are hashed first and skipped when the
// registry has them; large unknown files are hashed while they upload, so
// every byte is read once.
func (c *Client) PushDir(ctx context.Context, l *pack.Loaded, ref registry.Ref, opts PushOptions) (*PushResult, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, err
	}
	digests := make([]digest.Digest, len(l.Entries))
	var stream []int
	var hashIdx []int
	for i, e := range l.Entries {
		if d, ok := opts.Cache.Get(e.Abs); ok {
			digests[i] = d
			continue
		}
		if e.Size >= streamThreshold && !opts.HashFirst {
			stream = append(stream, i)
		} else {
			hashIdx = append(hashIdx, i)
		}
	}
	if len(hashIdx) > 0 {
		sub := make([]pack.Entry, len(hashIdx))
		for j, i := range hashIdx {
			sub[j] = l.Entries[i]
		}
		// Hashing reports no progress: the upload (or skip) of the
		// same bytes does.
		ds, err := pack.HashFiles(ctx, sub, 0, opts.Cache, nil)
		if err != nil {
			return nil, err
		}
		for j, i := range hashIdx {
			digests[i] = ds[j]
		}
	}
	res := &PushResult{}
	var uploaded, skipped, sent atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	// Streams first: they are the long ones.
	for _, i := range stream {
		e := l.Entries[i]
		g.Go(func() error {
			d, err := c.streamBlob(gctx, repo, ref, e, opts.Progress)
			if err != nil {
				return fmt.Errorf("uploading %s: %w", e.Path, err)
			}
			opts.Cache.Put(e.Abs, d)
			digests[i] = d
			uploaded.Add(1)
			sent.Add(e.Size)
			return nil
		})
	}
	for i, e := range l.Entries {
		if digests[i] == "" {
			continue // streaming
		}
		d := digests[i]
		g.Go(func() error {
			desc := ocispec.Descriptor{MediaType: e.MediaType, Digest: d, Size: e.Size}
			up, err := c.pushFile(gctx, repo, desc, e.Abs, e.Path, opts.Progress)
			if err != nil {
				return err
			}
			if up {
				uploaded.Add(1)
				sent.Add(e.Size)
			} else {
				skipped.Add(1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	art, err := pack.Build(l, digests, opts.Created)
	if err != nil {
		return nil, err
	}
	res.Uploaded, res.Skipped, res.Bytes = int(uploaded.Load()), int(skipped.Load()), sent.Load()
	return c.finishPush(ctx, repo, art, ref, res)
}

// pushFile uploads one file unless the registry has its blob. It reports
// whether it uploaded.
func (c *Client) pushFile(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, abs, name string, progress pack.Progress) (bool, error) {
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil {
		return false, fmt.Errorf("checking %s (%s): %w", name, desc.Digest, mapErr(err))
	}
	if ok {
		if progress != nil {
			progress(name, desc.Size)
		}
		return false, nil
	}
	f, err := os.Open(abs)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var r io.Reader = f
	if progress != nil {
		r = &countingReader{r: f, fn: func(n int64) { progress(name, n) }}
	}
	if err := repo.Blobs().Push(ctx, desc, r); err != nil {
		return false, fmt.Errorf("uploading %s: %w", name, mapErr(err))
	}
	return true, nil
}

// finishPush pushes the config and the manifest, which must come after
// every layer: registries may refuse a manifest whose blobs are missing.
func (c *Client) finishPush(ctx context.Context, repo *remote.Repository, art *pack.Artifact, ref registry.Ref, res *PushResult) (*PushResult, error) {
	cfg := art.ConfigDescriptor()
	ok, err := repo.Blobs().Exists(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("checking config: %w", mapErr(err))
	}
	if !ok {
		if err := repo.Blobs().Push(ctx, cfg, bytes.NewReader(art.Config)); err != nil {
			return nil, fmt.Errorf("uploading config: %w", mapErr(err))
		}
	}
	desc := art.Descriptor()
	if ref.Digest != "" && ref.Digest != desc.Digest {
		return nil, fmt.Errorf("%w: the release packs to %s, not %s", registry.ErrDigestMismatch, desc.Digest, ref.Digest)
	}
	if ref.Tag != "" {
		err = repo.Manifests().PushReference(ctx, desc, bytes.NewReader(art.ManifestJSON), ref.Tag)
	} else {
		err = repo.Manifests().Push(ctx, desc, bytes.NewReader(art.ManifestJSON))
	}
	if err != nil {
		return nil, fmt.Errorf("pushing manifest: %w", mapErr(err))
	}
	res.Ref = ref.WithDigest(desc.Digest)
	res.Descriptor = desc
	return res, nil
}

// countingReader reports bytes as they are read.
type countingReader struct {
	r  io.Reader
	fn func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.fn(int64(n))
	}
	return n, err
}
