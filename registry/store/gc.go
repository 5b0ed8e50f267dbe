package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// DefaultGracePeriod is how old an unreferenced blob or an idle upload
// session must be before GC removes it. It must exceed the longest time
// between a client's blob upload and its manifest PUT, because until that
// PUT nothing references the blob.
const DefaultGracePeriod = time.Hour

// GCOptions configures GC. The zero value collects for real with the
// default grace period and the system clock; the CLI sets DryRun by
// default.
type GCOptions struct {
	// GracePeriod keeps unreferenced blobs and upload sessions modified
	// less than this long ago; zero means DefaultGracePeriod.
	GracePeriod time.Duration
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Now is the clock the grace period is measured against; nil means
	// time.Now.
	Now func() time.Time
	// Actor is recorded in the audit event of a real run; "" means "gc".
	Actor string
	// Sweep, when set, is held from the second mark until the last blob
	// is deleted. A server passes the lock its manifest PUTs hold (for
	// reading) from checking their blobs to recording the manifest, which
	// closes the race between such a PUT and the deletion of a blob it
	// references (server.Server.GC).
	Sweep sync.Locker
}

// GCReport says what a GC run removed (or, in a dry run, would remove).
type GCReport struct {
	DryRun bool
	// Live is how many distinct digests manifests reference.
	Live int
	// Swept are the unreferenced blobs older than the grace period.
	Swept      []SweptBlob
	SweptBytes int64
	// Young counts unreferenced blobs kept because they are within the
	// grace period (pushes that may still be in progress).
	Young int
	// StaleLinks are repository links to blobs that no longer exist
	// (or are swept by this run).
	StaleLinks []Link
	// StaleUploads are upload sessions idle for longer than the grace
	// period.
	StaleUploads []StaleUpload
}

// SweptBlob is one blob GC removed.
type SweptBlob struct {
	Digest   digest.Digest
	Size     int64
	Modified time.Time
}

// Link is a (repository, blob) link.
type Link struct {
	Repository string
	Digest     digest.Digest
}

// StaleUpload is an idle upload session.
type StaleUpload struct {
	ID       string
	Size     int64
	Modified time.Time
}

// GC removes blobs no manifest references, links to blobs that are gone,
// and idle upload sessions, and is safe to run while pushes are in
// progress.
//
// It marks (Meta.Referenced), then sweeps only blobs that are both
// unreferenced and last modified before the start of the run minus the
// grace period. A blob uploaded by a push that has not yet PUT its
// manifest is young, so it survives; committing an existing blob restamps
// it, so re-pushing an old one counts as young too. Just before deleting,
// GC marks again, so a manifest PUT during the walk rescues its blobs.
// docs/registry-storage.md discusses the race that remains.
func GC(ctx context.Context, blobs Blobs, meta Meta, opts GCOptions) (GCReport, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	grace := opts.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	cutoff := now().Add(-grace)
	rep := GCReport{DryRun: opts.DryRun}

	live, err := mark(ctx, meta)
	if err != nil {
		return rep, err
	}
	rep.Live = len(live)

	var candidates []SweptBlob
	err = blobs.Walk(ctx, func(d digest.Digest, size int64, modified time.Time) error {
		if _, ok := live[d]; ok {
			return nil
		}
		if !modified.Before(cutoff) {
			rep.Young++
			return nil
		}
		candidates = append(candidates, SweptBlob{Digest: d, Size: size, Modified: modified})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("walking blobs: %w", err)
	}

	swept, err := sweep(ctx, blobs, meta, candidates, opts, &rep)
	if err != nil {
		return rep, err
	}

	if err := sweepLinks(ctx, blobs, meta, swept, opts.DryRun, &rep); err != nil {
		return rep, err
	}
	if err := sweepUploads(ctx, blobs, meta, cutoff, opts.DryRun, &rep); err != nil {
		return rep, err
	}

	if !opts.DryRun && (len(rep.Swept) > 0 || len(rep.StaleLinks) > 0 || len(rep.StaleUploads) > 0) {
		actor := opts.Actor
		if actor == "" {
			actor = "gc"
		}
		ev := Event{
			Time:   now(),
			Actor:  actor,
			Action: "gc",
			Detail: fmt.Sprintf("swept %d blobs (%d bytes), %d stale links, %d stale uploads",
				len(rep.Swept), rep.SweptBytes, len(rep.StaleLinks), len(rep.StaleUploads)),
		}
		if err := meta.Audit(ctx, ev); err != nil {
			return rep, fmt.Errorf("auditing gc: %w", err)
		}
	}
	return rep, nil
}

// sweep marks again (a manifest PUT since the first mark may reference a
// candidate now) and deletes the candidates still unreferenced, holding
// opts.Sweep throughout.
func sweep(ctx context.Context, blobs Blobs, meta Meta, candidates []SweptBlob, opts GCOptions, rep *GCReport) (map[digest.Digest]bool, error) {
	swept := map[digest.Digest]bool{}
	if len(candidates) == 0 {
		return swept, nil
	}
	if opts.Sweep != nil && !opts.DryRun {
		opts.Sweep.Lock()
		defer opts.Sweep.Unlock()
	}
	live, err := mark(ctx, meta)
	if err != nil {
		return nil, err
	}
	for _, c := range candidates {
		if _, ok := live[c.Digest]; ok {
			continue
		}
		if !opts.DryRun {
			err := blobs.Delete(ctx, c.Digest)
			if errors.Is(err, ErrBlobUnknown) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("sweeping %s: %w", c.Digest, err)
			}
		}
		swept[c.Digest] = true
		rep.Swept = append(rep.Swept, c)
		rep.SweptBytes += c.Size
	}
	return swept, nil
}

// mark returns the live set.
func mark(ctx context.Context, meta Meta) (map[digest.Digest]struct{}, error) {
	live := map[digest.Digest]struct{}{}
	err := meta.Referenced(ctx, func(d digest.Digest) error {
		live[d] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("marking: %w", err)
	}
	return live, nil
}

// sweepLinks removes links whose blob is gone or was swept by this run.
// Links are collected first and removed after, so Meta's Linked need not
// allow calls back into it.
func sweepLinks(ctx context.Context, blobs Blobs, meta Meta, swept map[digest.Digest]bool, dryRun bool, rep *GCReport) error {
	var links []Link
	err := meta.Linked(ctx, func(repo string, d digest.Digest) error {
		links = append(links, Link{Repository: repo, Digest: d})
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	missing := map[digest.Digest]bool{}
	for _, l := range links {
		gone, ok := missing[l.Digest]
		if !ok {
			gone = swept[l.Digest]
			if !gone {
				_, err := blobs.Stat(ctx, l.Digest)
				switch {
				case errors.Is(err, ErrBlobUnknown), errors.Is(err, ErrDigestInvalid):
					gone = true
				case err != nil:
					return fmt.Errorf("checking link %s@%s: %w", l.Repository, l.Digest, err)
				}
			}
			missing[l.Digest] = gone
		}
		if !gone {
			continue
		}
		if !dryRun {
			err := meta.UnlinkBlob(ctx, l.Repository, l.Digest)
			if err != nil && !errors.Is(err, ErrBlobUnknown) {
				return fmt.Errorf("removing link %s@%s: %w", l.Repository, l.Digest, err)
			}
		}
		rep.StaleLinks = append(rep.StaleLinks, l)
	}
	return nil
}

// sweepUploads cancels sessions idle since before cutoff.
func sweepUploads(ctx context.Context, blobs Blobs, meta Meta, cutoff time.Time, dryRun bool, rep *GCReport) error {
	var stale []StaleUpload
	err := blobs.Uploads(ctx, func(id string, size int64, modified time.Time) error {
		if modified.Before(cutoff) {
			stale = append(stale, StaleUpload{ID: id, Size: size, Modified: modified})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing uploads: %w", err)
	}
	for _, s := range stale {
		if !dryRun {
			u, err := blobs.ResumeUpload(ctx, s.ID)
			if errors.Is(err, ErrUploadUnknown) {
				continue // committed or cancelled meanwhile
			}
			if err != nil {
				return fmt.Errorf("reopening upload %s: %w", s.ID, err)
			}
			if err := u.Cancel(ctx); err != nil && !errors.Is(err, ErrUploadUnknown) {
				return fmt.Errorf("cancelling upload %s: %w", s.ID, err)
			}
			if err := meta.DeleteUpload(ctx, s.ID); err != nil {
				return fmt.Errorf("forgetting upload %s: %w", s.ID, err)
			}
		}
		rep.StaleUploads = append(rep.StaleUploads, s)
	}
	return nil
}
