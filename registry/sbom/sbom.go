package sbom

import (
	"encoding/json"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/pack"
)

// MediaType is the media type of a CycloneDX JSON document, and
// PredicateType the in-toto predicate type a signed BOM is attached
// under (DESIGN.md §3, https://cyclonedx.org/specification/overview/).
const (
	MediaType     = "application/vnd.cyclonedx+json"
	PredicateType = "https://cyclonedx.org/bom"
	// SchemaURL is the $schema every BOM names: the CycloneDX 1.6 JSON
	// schema, the version whose ML-BOM fields this package writes.
	SchemaURL = "http://cyclonedx.org/schema/bom-1.6.schema.json"
)

// Property names Airlock writes. CycloneDX's model card has no
// properties in cyclonedx-go, so model facts go on the component.
const (
	PropRole         = "airlock:role"
	PropPart         = "airlock:part"
	PropPath         = "airlock:path"
	PropMediaType    = "airlock:mediaType"
	PropFormat       = "airlock:format"
	PropParamSize    = "airlock:paramSize"
	PropPrecision    = "airlock:precision"
	PropQuantization = "airlock:quantization"
	PropDataScope    = "airlock:dataScope"
	PropRevision     = "airlock:revision"
	PropBaseModel    = "airlock:baseModel"
	PropURL          = "airlock:url"
	PropDigest       = "airlock:digest"
)

// The bom-refs of the parts. The release's own bom-ref is its purl.
const (
	RefModel = "model"
	// RefFilePrefix + path names a file of a multi-file part.
	RefFilePrefix = "file:"
	// RefDatasetPrefix + name names a dataset.
	RefDatasetPrefix = "dataset:"
)

// Options configures Build. The zero value writes no time, no tool
// version, no repository and no metrics.
type Options struct {
	// Repository is HOST/REPOSITORY where the release lives. It becomes
	// the purl's repository_url; empty leaves the purl location-free.
	Repository string
	// Timestamp is written as metadata.timestamp. Leave it nil for a BOM
	// that depends only on the release; the CLI sets it from
	// SOURCE_DATE_EPOCH.
	Timestamp *time.Time
	// ToolVersion is the Airlock version named in metadata.tools.
	ToolVersion string
	// Metrics fill the model card's quantitative analysis, for a BOM that
	// carries eval results.
	Metrics []Metric
}

// Metric is one performance metric of the model card
// (modelCard.quantitativeAnalysis.performanceMetrics).
type Metric struct {
	Type  string // e.g. accuracy, pass_rate, p95_latency_seconds
	Value string
	Slice string // the subset it was measured on, e.g. an eval suite
	// Lower and Upper bound the confidence interval, when known.
	Lower, Upper *float64
}

// Build describes the release whose manifest is m and whose digest is
// subject.Digest. rel is the release file; nil means read it from the
// manifest's dev.airlock.release annotation. Build reads nothing: every
// hash is a layer digest, which is the file's sha256 (DESIGN.md §3).
// It fails with registry.ErrNotRelease for a manifest that is not an
// Airlock release.
func Build(subject ocispec.Descriptor, m ocispec.Manifest, rel *pack.Release, opts Options) (*cdx.BOM, error) {
	if err := subject.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("release digest %q: %w", subject.Digest, err)
	}
	if !registry.IsModelArtifact(m.ArtifactType, m.Config.MediaType) {
		return nil, fmt.Errorf("%w: artifact type %q, config %q", registry.ErrNotRelease, m.ArtifactType, m.Config.MediaType)
	}
	if rel == nil {
		s, ok := m.Annotations[registry.AnnotationRelease]
		if !ok {
			return nil, fmt.Errorf("%w: the manifest has no %s annotation", registry.ErrNotRelease, registry.AnnotationRelease)
		}
		rel = &pack.Release{}
		if err := json.Unmarshal([]byte(s), rel); err != nil {
			return nil, fmt.Errorf("%w: parsing the %s annotation: %w", registry.ErrNotRelease, registry.AnnotationRelease, err)
		}
	}
	if rel.Model == nil {
		return nil, fmt.Errorf("%w: the release file names no model", registry.ErrNotRelease)
	}

	purl := PURL(rel.Metadata.Name, opts.Repository, subject.Digest)
	parts, stray := assign(partsOf(rel), m.Layers)

	var comps []cdx.Component
	for _, p := range parts {
		c := p.component()
		if p.role == registry.RoleModel {
			modelComponent(&c, rel, opts, subject.Digest)
		}
		comps = append(comps, c)
	}
	for _, l := range stray {
		comps = append(comps, fileComponent(l))
	}
	nParts := len(comps)
	for _, d := range rel.Datasets {
		comps = append(comps, datasetComponent(d))
	}
	uniqueRefs(comps, map[string]bool{purl: true})

	// The release depends on its parts; parts and datasets are declared
	// with no dependencies of their own, as CycloneDX asks of components
	// known to have none.
	partRefs := make([]string, nParts)
	for i := range partRefs {
		partRefs[i] = comps[i].BOMRef
	}
	deps := []cdx.Dependency{{Ref: purl, Dependencies: list(partRefs)}}
	for _, c := range comps {
		deps = append(deps, cdx.Dependency{Ref: c.BOMRef})
	}

	meta := &cdx.Metadata{
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "airlock", Version: opts.ToolVersion,
		}}},
		Component: releaseComponent(rel, purl, subject.Digest),
	}
	if opts.Timestamp != nil {
		meta.Timestamp = opts.Timestamp.UTC().Format(time.RFC3339)
	}
	return &cdx.BOM{
		JSONSchema:   SchemaURL,
		BOMFormat:    cdx.BOMFormat,
		SpecVersion:  cdx.SpecVersion1_6,
		SerialNumber: SerialNumber(subject.Digest),
		Version:      1,
		Metadata:     meta,
		Components:   &comps,
		Dependencies: &deps,
	}, nil
}

// Encode writes bom as indented JSON with a trailing newline. HTML
// characters are not escaped, so text reads as the release file wrote it.
func Encode(w io.Writer, bom *cdx.BOM) error {
	return cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false).Encode(bom)
}

// releaseComponent is the BOM's subject: the release as a whole.
func releaseComponent(rel *pack.Release, purl string, d digest.Digest) *cdx.Component {
	md := rel.Metadata
	c := &cdx.Component{
		BOMRef:      purl,
		Type:        cdx.ComponentTypeApplication,
		Name:        md.Name,
		Version:     md.Version,
		Description: md.Description,
		PackageURL:  purl,
		Hashes:      hashes(d),
		Licenses:    licenses(md.License),
	}
	if md.Owner != "" {
		c.Supplier = &cdx.OrganizationalEntity{Name: md.Owner}
	}
	if len(md.Authors) > 0 {
		authors := make([]cdx.OrganizationalContact, len(md.Authors))
		for i, a := range md.Authors {
			authors[i] = contact(a)
		}
		c.Authors = &authors
	}
	var props []cdx.Property
	if isURL(md.SourceURL) {
		c.ExternalReferences = &[]cdx.ExternalReference{{Type: cdx.ERTypeVCS, URL: md.SourceURL}}
	} else if md.SourceURL != "" {
		props = append(props, cdx.Property{Name: PropURL, Value: md.SourceURL})
	}
	if md.Revision != "" {
		props = append(props, cdx.Property{Name: PropRevision, Value: md.Revision})
	}
	for _, s := range rel.DataScopes {
		props = append(props, cdx.Property{Name: PropDataScope, Value: s})
	}
	c.Properties = list(props)
	return c
}

// modelComponent adds the model card, lineage and model facts to the
// model part's component.
func modelComponent(c *cdx.Component, rel *pack.Release, opts Options, subject digest.Digest) {
	m := rel.Model
	c.Name = rel.Metadata.Name
	c.Version = rel.Metadata.Version
	c.Licenses = licenses(rel.Metadata.License)
	if rel.Metadata.Owner != "" {
		c.Supplier = &cdx.OrganizationalEntity{Name: rel.Metadata.Owner}
	}
	props := *c.Properties
	for _, p := range []cdx.Property{
		{Name: PropFormat, Value: m.Format},
		{Name: PropParamSize, Value: m.ParamSize},
		{Name: PropPrecision, Value: m.Precision},
		{Name: PropQuantization, Value: m.Quantization},
	} {
		if p.Value != "" {
			props = append(props, p)
		}
	}

	// CycloneDX's architectureFamily is the broad kind (llama), and
	// modelArchitecture the specific one (llama3); Airlock's
	// architecture and family say the same, in that order.
	params := &cdx.MLModelParameters{ArchitectureFamily: m.Architecture, ModelArchitecture: m.Family}
	if params.ModelArchitecture == "" {
		params.ModelArchitecture = m.Architecture
	}
	if len(rel.Datasets) > 0 {
		ds := make([]cdx.MLDatasetChoice, len(rel.Datasets))
		for i, d := range rel.Datasets {
			ds[i] = cdx.MLDatasetChoice{Ref: RefDatasetPrefix + d.Name}
		}
		params.Datasets = &ds
	}
	card := &cdx.MLModelCard{}
	if *params != (cdx.MLModelParameters{}) {
		card.ModelParameters = params
	}
	if len(opts.Metrics) > 0 {
		card.QuantitativeAnalysis = &cdx.MLQuantitativeAnalysis{PerformanceMetrics: metrics(opts.Metrics)}
	}
	if card.ModelParameters != nil || card.QuantitativeAnalysis != nil {
		c.ModelCard = card
	}

	if rel.BaseModel != "" {
		base, err := registry.ParseRef(rel.BaseModel)
		if err == nil && base.Digest != "" && base.Digest != subject {
			bp := PURL("", base.Name(), base.Digest)
			c.Pedigree = &cdx.Pedigree{Ancestors: &[]cdx.Component{{
				BOMRef:     bp,
				Type:       cdx.ComponentTypeMachineLearningModel,
				Name:       path.Base(base.Repository),
				PackageURL: bp,
				Hashes:     hashes(base.Digest),
				Properties: &[]cdx.Property{{Name: PropBaseModel, Value: rel.BaseModel}},
			}}}
		} else {
			props = append(props, cdx.Property{Name: PropBaseModel, Value: rel.BaseModel})
		}
	}
	c.Properties = list(props)
}

// metrics sorts the metrics by type and slice, so the caller's order does
// not change the BOM.
func metrics(ms []Metric) *[]cdx.MLPerformanceMetric {
	sorted := append([]Metric(nil), ms...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Type != sorted[j].Type {
			return sorted[i].Type < sorted[j].Type
		}
		return sorted[i].Slice < sorted[j].Slice
	})
	out := make([]cdx.MLPerformanceMetric, len(sorted))
	for i, m := range sorted {
		out[i] = cdx.MLPerformanceMetric{Type: m.Type, Value: m.Value, Slice: m.Slice}
		if m.Lower != nil || m.Upper != nil {
			out[i].ConfidenceInterval = &cdx.MLPerformanceMetricConfidenceInterval{
				LowerBound: formatFloat(m.Lower), UpperBound: formatFloat(m.Upper),
			}
		}
	}
	return &out
}

func formatFloat(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

// datasetComponent describes a dataset the release file names. Nothing of
// it is packed, so its hash is the digest the release file states.
func datasetComponent(d pack.Dataset) cdx.Component {
	c := cdx.Component{
		BOMRef:   RefDatasetPrefix + d.Name,
		Type:     cdx.ComponentTypeData,
		Name:     d.Name,
		Licenses: licenses(d.License),
		Data:     &[]cdx.ComponentData{{Type: cdx.ComponentDataTypeDataset, Name: d.Name}},
	}
	var props []cdx.Property
	if d.Digest != "" {
		if h := hashes(digest.Digest(d.Digest)); h != nil {
			c.Hashes = h
		} else {
			props = append(props, cdx.Property{Name: PropDigest, Value: d.Digest})
		}
	}
	if isURL(d.URL) {
		c.ExternalReferences = &[]cdx.ExternalReference{{Type: cdx.ERTypeDistribution, URL: d.URL}}
	} else if d.URL != "" {
		props = append(props, cdx.Property{Name: PropURL, Value: d.URL})
	}
	c.Properties = list(props)
	return c
}

// part is one entry of the release file and the layers that came from it.
type part struct {
	role  registry.Role
	name  string // prompts and evals have names
	path  string
	files []ocispec.Descriptor
}

// partsOf lists the release file's parts in layer order (DESIGN.md §3).
func partsOf(rel *pack.Release) []*part {
	ps := []*part{{role: registry.RoleModel, path: rel.Model.Path}}
	if rel.Tokenizer != nil {
		ps = append(ps, &part{role: registry.RoleTokenizer, path: rel.Tokenizer.Path})
	}
	for _, n := range rel.Prompts {
		ps = append(ps, &part{role: registry.RolePrompt, name: n.Name, path: n.Path})
	}
	if rel.Safety != nil {
		ps = append(ps, &part{role: registry.RoleSafety, path: rel.Safety.Path})
	}
	for _, n := range rel.Evals {
		ps = append(ps, &part{role: registry.RoleEval, name: n.Name, path: n.Path})
	}
	for _, d := range rel.Docs {
		ps = append(ps, &part{role: registry.RoleDoc, path: d.Path})
	}
	for _, c := range rel.Code {
		ps = append(ps, &part{role: registry.RoleCode, path: c.Path})
	}
	return ps
}

// assign hands each layer to the part it came from: same role, same name
// for named parts, and a path at or under the part's path. Layers no part
// claims are returned as stray; the BOM lists them too, since they are in
// the release whatever the release file says.
func assign(parts []*part, layers []ocispec.Descriptor) ([]*part, []ocispec.Descriptor) {
	var stray []ocispec.Descriptor
	for _, l := range layers {
		p := layerPath(l)
		role := registry.Role(l.Annotations[registry.AnnotationRole])
		name := l.Annotations[registry.AnnotationPart]
		claimed := false
		for _, pt := range parts {
			if pt.role == role && (pt.name == "" || pt.name == name) && under(p, pt.path) {
				pt.files = append(pt.files, l)
				claimed = true
				break
			}
		}
		if !claimed {
			stray = append(stray, l)
		}
	}
	return parts, stray
}

// layerPath is a layer's file path: ModelPack's filepath annotation, else
// the OCI title.
func layerPath(l ocispec.Descriptor) string {
	p := l.Annotations[registry.AnnotationFilepath]
	if p == "" {
		p = l.Annotations[ocispec.AnnotationTitle]
	}
	if p == "" {
		return ""
	}
	return path.Clean(p)
}

// under reports whether file p is dir or inside it.
func under(p, dir string) bool {
	dir = path.Clean(dir)
	return p != "" && (dir == "." || p == dir || strings.HasPrefix(p, dir+"/"))
}

// ref is the part's bom-ref: its role, and its name or path when the
// role allows several parts.
func (p *part) ref() string {
	switch {
	case p.name != "":
		return string(p.role) + ":" + p.name
	case p.role == registry.RoleDoc || p.role == registry.RoleCode:
		return string(p.role) + ":" + path.Clean(p.path)
	}
	return string(p.role)
}

// component describes a part. A part that is one file carries that file's
// hash itself; a directory carries one file component per file.
func (p *part) component() cdx.Component {
	c := cdx.Component{BOMRef: p.ref(), Name: p.name}
	switch p.role {
	case registry.RoleModel:
		c.Type = cdx.ComponentTypeMachineLearningModel
	default:
		c.Type = cdx.ComponentTypeData
	}
	if c.Name == "" {
		c.Name = path.Clean(p.path)
		if p.role == registry.RoleTokenizer || p.role == registry.RoleSafety {
			c.Name = string(p.role)
		}
	}
	if c.Type == cdx.ComponentTypeData {
		c.Data = &[]cdx.ComponentData{{Type: dataType(p.role), Name: c.Name}}
	}
	props := []cdx.Property{{Name: PropRole, Value: string(p.role)}}
	if p.name != "" {
		props = append(props, cdx.Property{Name: PropPart, Value: p.name})
	}
	props = append(props, cdx.Property{Name: PropPath, Value: path.Clean(p.path)})
	if len(p.files) == 1 && layerPath(p.files[0]) == path.Clean(p.path) {
		c.Hashes = hashes(p.files[0].Digest)
		props = append(props, cdx.Property{Name: PropMediaType, Value: p.files[0].MediaType})
	} else if len(p.files) > 0 {
		files := make([]cdx.Component, len(p.files))
		for i, l := range p.files {
			files[i] = fileComponent(l)
		}
		c.Components = &files
	}
	c.Properties = &props
	return c
}

// dataType is the kind of data a part holds, in CycloneDX's words.
func dataType(r registry.Role) cdx.ComponentDataType {
	switch r {
	case registry.RoleEval:
		return cdx.ComponentDataTypeDataset
	case registry.RoleCode:
		return cdx.ComponentDataTypeSourceCode
	case registry.RoleDoc:
		return cdx.ComponentDataTypeOther
	}
	return cdx.ComponentDataTypeConfiguration
}

// fileComponent is one file of the release: one layer.
func fileComponent(l ocispec.Descriptor) cdx.Component {
	p := layerPath(l)
	name := p
	if name == "" {
		name = l.Digest.String()
	}
	props := []cdx.Property{{Name: PropMediaType, Value: l.MediaType}}
	if role := l.Annotations[registry.AnnotationRole]; role != "" {
		props = append([]cdx.Property{{Name: PropRole, Value: role}}, props...)
	}
	return cdx.Component{
		BOMRef:     RefFilePrefix + name,
		Type:       cdx.ComponentTypeFile,
		Name:       name,
		Hashes:     hashes(l.Digest),
		Properties: &props,
	}
}

// contact reads "Name <email>" when it can, else takes the string as a name.
func contact(s string) cdx.OrganizationalContact {
	if a, err := mail.ParseAddress(s); err == nil {
		return cdx.OrganizationalContact{Name: a.Name, Email: a.Address}
	}
	return cdx.OrganizationalContact{Name: s}
}

// isURL reports whether s is an absolute URL, which CycloneDX's
// iri-reference fields accept.
func isURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != "" && !strings.ContainsAny(s, " \t\n")
}

// uniqueRefs renames any bom-ref already taken, here or in nested
// components, by appending ~2, ~3, …. A release packed by Airlock has
// none (a file belongs to one part, names are unique); a manifest made
// elsewhere may.
func uniqueRefs(cs []cdx.Component, taken map[string]bool) {
	for i := range cs {
		c := &cs[i]
		if c.BOMRef != "" && taken[c.BOMRef] {
			base := c.BOMRef
			for n := 2; taken[c.BOMRef]; n++ {
				c.BOMRef = base + "~" + strconv.Itoa(n)
			}
		}
		taken[c.BOMRef] = true
		if c.Components != nil {
			uniqueRefs(*c.Components, taken)
		}
	}
}

// list is nil for an empty slice, so that an optional field is omitted.
func list[T any](s []T) *[]T {
	if len(s) == 0 {
		return nil
	}
	return &s
}
