package server

import (
	"context"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock-dev/airlock/registry/store"
)

// storageRefresh bounds how often a scrape walks the blob store: a walk
// stats every blob, so scrapes in between reuse the last result.
const storageRefresh = 30 * time.Second

// storageCollector exports the blob store's size:
// airlock_registry_storage_bytes and airlock_registry_storage_blobs.
type storageCollector struct {
	blobs store.Blobs
	now   func() time.Time
	bytes *prometheus.Desc
	count *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	nBytes int64
	nBlobs int64
	ok     bool
}

func newStorageCollector(blobs store.Blobs, now func() time.Time) *storageCollector {
	return &storageCollector{
		blobs: blobs,
		now:   now,
		bytes: prometheus.NewDesc("airlock_registry_storage_bytes", "Bytes of committed blobs in the blob store (refreshed at most every 30 s).", nil, nil),
		count: prometheus.NewDesc("airlock_registry_storage_blobs", "Committed blobs in the blob store (refreshed at most every 30 s).", nil, nil),
	}
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.count
}

// Collect walks the store when the last walk is older than
// storageRefresh; a walk that fails leaves the series out rather than
// reporting a wrong size.
func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); !c.ok || now.Sub(c.at) >= storageRefresh {
		// Collect has no context of its own; bound the walk instead.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var n, size int64
		err := c.blobs.Walk(ctx, func(_ digest.Digest, s int64, _ time.Time) error {
			n++
			size += s
			return nil
		})
		c.ok, c.at = err == nil, now
		if c.ok {
			c.nBlobs, c.nBytes = n, size
		}
	}
	if c.ok {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(c.nBytes))
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(c.nBlobs))
	}
}
