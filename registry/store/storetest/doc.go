// Package storetest is the conformance suite of registry/store: every
// implementation of store.Blobs runs TestBlobs (and, if it keeps its data
// in a directory, TestBlobsRestart), and every store.Meta runs TestMeta,
// from its own _test.go. The suites test what store.go's comments promise
// and nothing about how an implementation keeps its data.
package storetest
