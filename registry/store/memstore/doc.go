// Package memstore keeps a registry's blobs and metadata in memory: the
// reference implementation of store.Blobs and store.Meta, small enough to
// read in one sitting, used by the server's tests and by anything that
// needs a throwaway registry. Everything is lost when the process ends, so
// "survives a restart" means "survives Close and ResumeUpload" here.
package memstore
