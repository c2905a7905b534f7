package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
)

// maxInflightBatches bounds inflight_batches: each batch in flight holds
// its decoded images, and past a few the GPU gains nothing more.
const maxInflightBatches = 8

// minStreamBytes is the smallest bound on a stream's size.
const minStreamBytes = 8 << 20

// validator collects every problem with its key path.
type validator struct{ errs []*FieldError }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

func (c *Config) validate() []*FieldError {
	v := &validator{}
	c.validateNATS(v)
	switch c.Device {
	case DeviceAuto, DeviceCPU, DeviceCUDA:
	default:
		v.add("device", "must be auto, cpu or cuda, got %q", c.Device)
	}
	if c.DrainTimeout <= 0 {
		v.add("drain_timeout", "must be > 0, got %v", c.DrainTimeout)
	}
	if c.Metrics.Addr != "" {
		if reason := checkHostPort(c.Metrics.Addr); reason != "" {
			v.add("metrics.addr", "%s (or off to disable the endpoint)", reason)
		}
	}
	if len(c.Pipelines) == 0 {
		v.add("pipelines", "at least one pipeline is needed")
	}
	for i := range c.Pipelines {
		c.Pipelines[i].validate(v, fmt.Sprintf("pipelines[%d]", i))
	}
	c.validateAcrossPipelines(v)
	return v.errs
}

func (c *Config) validateNATS(v *validator) {
	n := c.NATS
	if n.URL == "" {
		if reason := checkHostPort(c.Embedded.Listen); reason != "" {
			v.add("embedded.listen", "%s", reason)
		}
		if c.Embedded.DataDir == "" {
			v.add("embedded.data_dir", "must not be empty")
		}
	} else {
		for _, u := range strings.Split(n.URL, ",") {
			u = strings.TrimSpace(u)
			p, err := url.Parse(u)
			switch {
			case err != nil:
				v.add("nats.url", "%q is not a URL: %v", u, err)
			case p.Scheme != "nats" && p.Scheme != "tls" && p.Scheme != "ws" && p.Scheme != "wss":
				v.add("nats.url", "%q: scheme must be nats, tls, ws or wss, like nats://host:4222", u)
			case p.Host == "":
				v.add("nats.url", "%q has no host", u)
			}
		}
	}
	var auth []string
	if n.Creds != "" {
		auth = append(auth, "creds")
	}
	if n.Token != "" {
		auth = append(auth, "token")
	}
	if n.NKey != "" {
		auth = append(auth, "nkey")
	}
	if n.User != "" || n.Password != "" {
		auth = append(auth, "user/password")
	}
	if len(auth) > 1 {
		v.add("nats", "use one way to authenticate, got %s", strings.Join(auth, " and "))
	}
	if n.Password != "" && n.User == "" {
		v.add("nats.user", "must be set with nats.password")
	}
	if (n.TLS.Cert == "") != (n.TLS.Key == "") {
		v.add("nats.tls", "cert and key go together (got only one of them)")
	}
}

// checkHostPort returns "" for a valid host:port, else the reason.
func checkHostPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Sprintf("%q: port must be a number from 0 to 65535", addr)
	}
	return ""
}

func (p *Pipeline) validate(v *validator, at string) {
	if p.Name == "" {
		v.add(at+".name", "must not be empty")
	} else if !validName(p.Name) {
		v.add(at+".name", "%q: use letters, digits, '-' and '_' only", p.Name)
	}
	switch p.Kind {
	case KindImage:
		if p.Image == nil {
			v.add(at+".image", "an image pipeline needs an image section")
		}
		if p.Text != nil {
			v.add(at+".text", "not allowed in an image pipeline")
		}
	case KindText:
		if p.Text == nil {
			v.add(at+".text", "a text pipeline needs a text section")
		}
		if p.Image != nil {
			v.add(at+".image", "not allowed in a text pipeline")
		}
		if p.Limits.MaxPixels != 0 {
			v.add(at+".limits.max_pixels", "only image pipelines have this limit")
		}
	case "":
		v.add(at+".kind", "must be image or text (it can be left out only when the name is image or text)")
	default:
		v.add(at+".kind", "must be image or text, got %q", p.Kind)
	}

	if len(p.Subjects) == 0 {
		v.add(at+".subjects", "at least one subject is needed")
	}
	for i, s := range p.Subjects {
		if reason := checkSubject(s, true); reason != "" {
			v.add(fmt.Sprintf("%s.subjects[%d]", at, i), "%s", reason)
		}
	}
	for _, f := range []struct{ key, val string }{
		{"stream", p.Stream}, {"consumer", p.Consumer}, {"output_stream", p.OutputStream}, {"dead_letter_stream", p.DeadLetterStream},
	} {
		if reason := checkStreamName(f.val); reason != "" {
			v.add(at+"."+f.key, "%s", reason)
		}
	}
	for _, f := range []struct{ key, val string }{{"output", p.Output}, {"dead_letter", p.DeadLetter}} {
		if reason := checkSubject(f.val, false); reason != "" {
			v.add(at+"."+f.key, "%s", reason)
		}
	}
	if p.Output != "" && p.Output == p.DeadLetter {
		v.add(at+".dead_letter", "must differ from output %q", p.Output)
	}
	switch p.OutputMode {
	case OutputBatch, OutputItem:
	default:
		v.add(at+".output_mode", "must be batch or item, got %q", p.OutputMode)
	}

	b := p.Batch
	switch {
	case b.MaxItems <= 0:
		v.add(at+".batch.max_items", "must be > 0, got %d", b.MaxItems)
	case p.Kind == KindImage && b.MaxItems > kernels.MaxBatchImages:
		v.add(at+".batch.max_items", "must be at most %d for an image pipeline (one GPU launch per batch, one grid slice per image), got %d", kernels.MaxBatchImages, b.MaxItems)
	}
	if b.MaxBytes <= 0 {
		v.add(at+".batch.max_bytes", "must be > 0, got %d", b.MaxBytes)
	}
	if b.MaxWait <= 0 {
		v.add(at+".batch.max_wait", "must be > 0, got %v", b.MaxWait)
	}
	if p.Limits.MaxBytes <= 0 {
		v.add(at+".limits.max_bytes", "must be > 0, got %d", p.Limits.MaxBytes)
	} else if b.MaxBytes > 0 && p.Limits.MaxBytes > b.MaxBytes {
		v.add(at+".limits.max_bytes", "%d is larger than batch.max_bytes %d: one item must fit in a batch", p.Limits.MaxBytes, b.MaxBytes)
	}
	if p.Kind == KindImage && p.Limits.MaxPixels <= 0 {
		v.add(at+".limits.max_pixels", "must be > 0, got %d", p.Limits.MaxPixels)
	}
	st := p.Streams
	if st.Replicas < 1 || st.Replicas > 5 {
		v.add(at+".streams.replicas", "must be within 1..5 (JetStream's limit), got %d", st.Replicas)
	}
	switch st.InputRetention {
	case RetentionLimits, RetentionWorkQueue:
	default:
		v.add(at+".streams.input_retention", "must be limits or workqueue, got %q", st.InputRetention)
	}
	for _, f := range []struct {
		key string
		val time.Duration
	}{{"input_max_age", st.InputMaxAge}, {"output_max_age", st.OutputMaxAge}} {
		if f.val < 0 {
			v.add(at+".streams."+f.key, "must be >= 0 (0: kept), got %v", f.val)
		}
	}
	for _, f := range []struct {
		key string
		val int64
	}{{"input_max_bytes", st.InputMaxBytes}, {"output_max_bytes", st.OutputMaxBytes}} {
		if f.val != 0 && f.val < minStreamBytes {
			v.add(at+".streams."+f.key, "%d is below %d (8 MiB): a stream must hold more than a few messages (0: no bound)", f.val, minStreamBytes)
		}
	}
	switch {
	case st.InputMaxBytes > 0 && st.InputRetention == RetentionLimits:
		v.add(at+".streams.input_max_bytes", "needs input_retention: workqueue: with limits retention processed items stay, fill the bound, and every publish is then refused")
	case st.InputMaxBytes > 0 && st.InputMaxBytes < p.Limits.MaxBytes:
		v.add(at+".streams.input_max_bytes", "%d is less than limits.max_bytes %d: the largest item allowed could never be published", st.InputMaxBytes, p.Limits.MaxBytes)
	}
	if p.AckWait <= b.MaxWait {
		v.add(at+".ack_wait", "%v must be longer than batch.max_wait %v, or items would be redelivered while they wait in a batch", p.AckWait, b.MaxWait)
	}
	if p.MaxDeliver <= 0 {
		v.add(at+".max_deliver", "must be > 0, got %d", p.MaxDeliver)
	}
	for i, d := range p.RetryBackoff {
		if d <= 0 {
			v.add(fmt.Sprintf("%s.retry_backoff[%d]", at, i), "must be > 0, got %v", d)
		}
	}
	switch {
	case p.MaxAckPending < 0:
		v.add(at+".max_ack_pending", "must be >= 0 (0: derived), got %d", p.MaxAckPending)
	case p.MaxAckPending > 0 && p.MaxAckPending < b.MaxItems:
		v.add(at+".max_ack_pending", "%d is less than batch.max_items %d: the server would stop delivering before a batch fills, and every batch would wait batch.max_wait", p.MaxAckPending, b.MaxItems)
	}
	if p.MaxInflightBytes <= 0 {
		v.add(at+".max_inflight_bytes", "must be > 0, got %d", p.MaxInflightBytes)
	} else if b.MaxBytes > 0 && p.MaxInflightBytes < b.MaxBytes {
		v.add(at+".max_inflight_bytes", "%d is less than batch.max_bytes %d: a full batch could never be in flight", p.MaxInflightBytes, b.MaxBytes)
	}
	if p.Threads < 0 {
		v.add(at+".threads", "must be >= 0 (0: all cores), got %d", p.Threads)
	}
	if p.InflightBatches < 0 || p.InflightBatches > maxInflightBatches {
		v.add(at+".inflight_batches", "must be within 0..%d (0: 2 on a GPU, 1 on the CPU), got %d", maxInflightBatches, p.InflightBatches)
	}

	if s := p.Image; s != nil {
		if err := s.Validate(); err != nil {
			v.add(at, "%v", err) // the image package names the key (image.resize, ...)
			fixPath(v, at)
		}
	}
	if s := p.Text; s != nil {
		switch s.IDType {
		case preprocess.Int64, preprocess.Int32:
			if err := s.Validate(); err != nil {
				v.add(at, "%v", err)
				fixPath(v, at)
			}
		default:
			v.add(at+".text.id_dtype", "must be int64 or int32, got %q", dtypeName(string(s.IDType)))
		}
	}
}

// fixPath turns the last error, "pipelines[i]: image.resize: reason" as
// the spec packages word it, into path "pipelines[i].image.resize" and
// reason "reason".
func fixPath(v *validator, at string) {
	e := v.errs[len(v.errs)-1]
	key, reason, ok := strings.Cut(e.Reason, ": ")
	if ok && !strings.ContainsAny(key, " \"") {
		e.Path, e.Reason = at+"."+key, reason
	}
}

func validName(s string) bool {
	for _, r := range s {
		if !(r == '-' || r == '_' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return false
		}
	}
	return s != ""
}

// checkStreamName returns "" for a valid JetStream stream or consumer name.
func checkStreamName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.ContainsAny(s, ".*>/\\"):
		return fmt.Sprintf("%q: must not contain '.', '*', '>', '/' or '\\'", s)
	case strings.IndexFunc(s, unicode.IsSpace) >= 0 || strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Sprintf("%q: must not contain white space", s)
	case len(s) > 255:
		return "must be at most 255 bytes"
	}
	return ""
}

// checkSubject returns "" for a valid NATS subject; wildcards says whether
// '*' and '>' are allowed.
func checkSubject(s string, wildcards bool) string {
	if s == "" {
		return "must not be empty"
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Sprintf("%q: a subject must not contain white space", s)
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Sprintf("%q: empty token (a leading, trailing or doubled '.')", s)
		case (t == "*" || t == ">") && !wildcards:
			return fmt.Sprintf("%q: must be a literal subject, without '*' or '>'", s)
		case t == ">" && i != len(tokens)-1:
			return fmt.Sprintf("%q: '>' may only be the last token", s)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return fmt.Sprintf("%q: '*' and '>' must be whole tokens", s)
		}
	}
	return ""
}

// subjectsOverlap says whether some subject matches both patterns.
func subjectsOverlap(a, b string) bool {
	ta, tb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(ta) && i == len(tb):
			return true
		case i == len(ta) || i == len(tb):
			return false
		case ta[i] == ">" || tb[i] == ">":
			return true
		case ta[i] == "*" || tb[i] == "*" || ta[i] == tb[i]:
			continue
		}
		return false
	}
}

type subjectRef struct{ path, subject, pipeline string }

func (c *Config) validateAcrossPipelines(v *validator) {
	var inputs []subjectRef
	names := map[string]string{}   // pipeline name → path
	streams := map[string]string{} // stream name → path
	literals := map[string]string{}
	for i, p := range c.Pipelines {
		at := fmt.Sprintf("pipelines[%d]", i)
		if prev, dup := names[p.Name]; dup && p.Name != "" {
			v.add(at+".name", "%q is already the name of %s", p.Name, prev)
		} else {
			names[p.Name] = at
		}
		for _, f := range []struct{ key, val string }{{"stream", p.Stream}, {"output_stream", p.OutputStream}, {"dead_letter_stream", p.DeadLetterStream}} {
			if f.val == "" {
				continue
			}
			if prev, dup := streams[f.val]; dup {
				v.add(at+"."+f.key, "stream %q is already used by %s", f.val, prev)
			} else {
				streams[f.val] = at + "." + f.key
			}
		}
		for k, s := range p.Subjects {
			path := fmt.Sprintf("%s.subjects[%d]", at, k)
			if checkSubject(s, true) != "" {
				continue
			}
			for _, in := range inputs {
				if subjectsOverlap(s, in.subject) {
					v.add(path, "%q overlaps %q (%s): a message would go to both", s, in.subject, in.path)
					break
				}
			}
			inputs = append(inputs, subjectRef{path, s, p.Name})
		}
	}
	for i, p := range c.Pipelines {
		at := fmt.Sprintf("pipelines[%d]", i)
		for _, f := range []struct{ key, val string }{{"output", p.Output}, {"dead_letter", p.DeadLetter}} {
			if checkSubject(f.val, false) != "" {
				continue
			}
			if prev, dup := literals[f.val]; dup {
				v.add(at+"."+f.key, "%q is already used by %s", f.val, prev)
			} else {
				literals[f.val] = at + "." + f.key
			}
			for _, in := range inputs {
				if subjectsOverlap(f.val, in.subject) {
					v.add(at+"."+f.key, "%q matches input subject %q (%s): the pipeline's output would feed an input and loop", f.val, in.subject, in.path)
					break
				}
			}
		}
	}
}
