// Package sbom describes a release as a CycloneDX 1.6 ML-BOM
// (https://cyclonedx.org/docs/1.6/json/): the release as the BOM's
// subject, the model as a machine-learning-model component with its model
// card, every other part (tokenizer, prompts, safety settings, eval
// suites, docs, code) as a data component, every file with its SHA-256,
// the datasets with their licenses, the base model as the model's
// ancestor, and the dependency graph from the release to its parts.
//
// Everything comes from the release manifest, which already holds each
// file's sha256 as its layer digest and the release file as an
// annotation: building a BOM reads no layer and does no I/O. The output is
// reproducible: the same manifest and options give byte-identical JSON,
// and the serial number is derived from the manifest digest. No wall-clock
// time is written unless the caller passes one.
//
// This package is the only importer of cyclonedx-go (DESIGN.md §2).
package sbom
