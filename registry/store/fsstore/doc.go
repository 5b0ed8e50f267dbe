// Package fsstore keeps the embedded registry's blobs on a local
// filesystem: it implements store.Blobs and owns the layout under its root
// directory, the upload sessions' files and their saved hash state.
//
// Layout under the root:
//
//	blobs/<alg>/<first two hex digits>/<hex>   committed blobs (sha256, sha512)
//	uploads/<id>/data                          the bytes of an open upload
//	uploads/<id>/state                         saved sha256 state and byte count
//
// A blob appears under blobs/ only by rename(2) of a fully written,
// fsynced and verified upload file, followed by an fsync of the directory,
// so a crash or a killed client never leaves a partial blob visible.
// docs/registry-storage.md gives the full durability argument.
package fsstore
