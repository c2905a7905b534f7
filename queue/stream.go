package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamSpec describes a stream stoker needs. Existing streams are used as
// they are: stoker never rewrites a user's stream.
type StreamSpec struct {
	Name     string
	Subjects []string
	// Duplicates is the window in which a repeated Nats-Msg-Id is dropped;
	// default 2 minutes (the server's default).
	Duplicates time.Duration
	// MaxAge drops messages older than this; default 0 (keep).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; default 0 (no bound). When it is
	// reached the oldest messages are dropped, or, with RefuseWhenFull,
	// new publishes are refused.
	MaxBytes       int64
	RefuseWhenFull bool
	// WorkQueue removes a message once a consumer acknowledges or
	// terminates it (work-queue retention); otherwise messages stay until
	// MaxAge or MaxBytes removes them (limits retention).
	WorkQueue bool
	// Replicas for clustered servers; default 1.
	Replicas int
	// Memory stores the stream in memory instead of files.
	Memory bool
}

// EnsureStream creates the stream when it does not exist and reports whether
// it did. An existing stream is left untouched; if it does not capture every
// subject of s, the error says which, since the pipeline would never see
// those messages.
func (c *Conn) EnsureStream(ctx context.Context, s StreamSpec) (created bool, err error) {
	st, err := c.js.Stream(ctx, s.Name)
	if err == nil {
		info := st.CachedInfo()
		for _, want := range s.Subjects {
			if !coveredBy(want, info.Config.Subjects) {
				return false, fmt.Errorf("queue: existing stream %s (subjects %v) does not capture %q; add the subject to the stream or change the pipeline's stream", s.Name, info.Config.Subjects, want)
			}
		}
		if wq := info.Config.Retention == jetstream.WorkQueuePolicy; wq != s.WorkQueue {
			c.log.Warn("existing stream's retention differs from the configuration's; it is used as it is, and JetStream cannot change a retention in place: delete the stream (and what it holds) or name a new one",
				"stream", s.Name, "retention", info.Config.Retention.String(), "configured_work_queue", s.WorkQueue)
		}
		return false, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, fmt.Errorf("queue: look up stream %s: %w", s.Name, err)
	}
	cfg := jetstream.StreamConfig{
		Name:       s.Name,
		Subjects:   s.Subjects,
		Duplicates: s.Duplicates,
		MaxAge:     s.MaxAge,
		MaxBytes:   s.MaxBytes,
		Replicas:   s.Replicas,
		Storage:    jetstream.FileStorage,
	}
	if s.MaxBytes == 0 {
		cfg.MaxBytes = -1
	}
	if s.RefuseWhenFull {
		cfg.Discard = jetstream.DiscardNew
	}
	if s.WorkQueue {
		cfg.Retention = jetstream.WorkQueuePolicy
	}
	if s.Memory {
		cfg.Storage = jetstream.MemoryStorage
	}
	if _, err := c.js.CreateStream(ctx, cfg); err != nil {
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return false, nil // another replica created it first
		}
		return false, fmt.Errorf("queue: create stream %s for %v: %w", s.Name, s.Subjects, err)
	}
	return true, nil
}

// coveredBy reports whether every subject matching want also matches one of
// the stream's subjects.
func coveredBy(want string, have []string) bool {
	for _, h := range have {
		if SubjectCovers(h, want) {
			return true
		}
	}
	return false
}

// SubjectCovers reports whether the subject pattern outer matches every
// subject that inner matches (for example "raw.>" covers "raw.image.>").
func SubjectCovers(outer, inner string) bool {
	o, i := splitTokens(outer), splitTokens(inner)
	for k, ot := range o {
		if ot == ">" {
			return k < len(i)
		}
		if k >= len(i) {
			return false
		}
		it := i[k]
		switch {
		case ot == "*":
			if it == ">" {
				return false
			}
		case ot != it:
			return false
		}
	}
	return len(o) == len(i)
}

// SubjectsOverlap reports whether some subject matches both patterns.
func SubjectsOverlap(a, b string) bool {
	x, y := splitTokens(a), splitTokens(b)
	for k := 0; k < len(x) && k < len(y); k++ {
		if x[k] == ">" || y[k] == ">" {
			return true
		}
		if x[k] != "*" && y[k] != "*" && x[k] != y[k] {
			return false
		}
	}
	return len(x) == len(y)
}

// ValidSubject checks a subject or, when wildcards is true, a subject
// pattern: non-empty tokens separated by dots, no white space, and with
// wildcards `*` as a whole token and `>` only as the last one.
func ValidSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	toks := splitTokens(s)
	for k, t := range toks {
		if t == "" {
			return fmt.Errorf("subject %q has an empty token", s)
		}
		for _, r := range t {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return fmt.Errorf("subject %q contains white space", s)
			}
		}
		switch {
		case t == "*" || t == ">":
			if !wildcards {
				return fmt.Errorf("subject %q must be literal (no wildcards)", s)
			}
			if t == ">" && k != len(toks)-1 {
				return fmt.Errorf("subject %q: '>' must be the last token", s)
			}
		default:
			for _, r := range t {
				if r == '*' || r == '>' {
					return fmt.Errorf("subject %q: wildcard inside token %q", s, t)
				}
			}
		}
	}
	return nil
}

func splitTokens(s string) []string {
	var toks []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			toks = append(toks, s[start:i])
			start = i + 1
		}
	}
	return append(toks, s[start:])
}
