package syncapi

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
)

// message is one archived message as the API shows it.
type message struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Direction string    `json:"direction,omitempty"`
	Partner   string    `json:"partner,omitempty"`
	Body      string    `json:"body,omitempty"`
	Stanza    string    `json:"stanza,omitempty"`
	// Error is set for a record that cannot be read (its key is gone or
	// its bytes were changed); the other fields but id and time are empty.
	Error string `json:"error,omitempty"`
}

func toMessage(m archive.Message) message {
	out := message{ID: m.ID.String(), Time: domain.ArchiveIDTime(m.ID)}
	switch {
	case errors.Is(m.Err, archive.ErrKeyGone):
		out.Error = "key_gone"
		return out
	case m.Err != nil:
		out.Error = "unreadable"
		return out
	}
	out.Time, out.Direction, out.Partner = m.At, m.Direction.String(), m.Partner
	out.Body = bodyOf(m.Stanza)
	out.Stanza = string(m.Stanza)
	return out
}

// bodyOf returns the text of the message's first <body/> child (XMPP
// stanzas are archived as routed, so they are well-formed; anything else
// gives an empty body). Entities and CDATA are decoded by encoding/xml;
// stanzas never hold a DTD, so nothing is expanded.
func bodyOf(stanza []byte) string {
	d := xml.NewDecoder(bytes.NewReader(stanza))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "body" && (t.Name.Space == "" || t.Name.Space == "jabber:client" || t.Name.Space == "jabber:server") {
				var body struct {
					Text string `xml:",chardata"`
				}
				if err := d.DecodeElement(&body, &t); err != nil {
					return ""
				}
				return body.Text
			}
		case xml.EndElement:
			depth--
		}
	}
}

type historyResponse struct {
	Messages []message `json:"messages"`
	// First and Last are the ids at the page's ends: pass last as after
	// (forwards) or first as before (backwards) for the next page.
	First    string `json:"first,omitempty"`
	Last     string `json:"last,omitempty"`
	Complete bool   `json:"complete"`
	Count    int    `json:"count"`
}

// badParam answers 400 with code invalid_parameter.
func badParam(w http.ResponseWriter, name string, err error) {
	writeError(w, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("parameter %s: %v", name, err))
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	user := userOf(r)
	v := r.URL.Query()
	var q archive.Query
	var err error
	if with := v.Get("with"); with != "" {
		if q.With, err = jid.Parse(with); err != nil {
			badParam(w, "with", err)
			return
		}
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"start", &q.Start}, {"end", &q.End}} {
		if s := v.Get(p.name); s != "" {
			if *p.t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				badParam(w, p.name, err)
				return
			}
		}
	}
	for _, p := range []struct {
		name string
		id   *uuid.UUID
	}{{"after", &q.AfterID}, {"before", &q.BeforeID}} {
		if s := v.Get(p.name); s != "" {
			if *p.id, err = uuid.Parse(s); err != nil {
				badParam(w, p.name, err)
				return
			}
		}
	}
	if s := v.Get("max"); s != "" {
		if q.Max, err = strconv.Atoi(s); err != nil || q.Max < 1 {
			badParam(w, "max", errors.New("want a positive integer"))
			return
		}
	}
	// Paging backwards, like RSM <before/>: from before, or from the end.
	q.Last = q.BeforeID != uuid.Nil || v.Get("last") == "true"
	page, err := s.cfg.Archive.Query(r.Context(), user, q)
	if err != nil {
		s.archiveError(w, r, err)
		return
	}
	resp := historyResponse{Messages: []message{}, Complete: page.Complete, Count: page.Count}
	for _, m := range page.Messages {
		resp.Messages = append(resp.Messages, toMessage(m))
	}
	if page.First != uuid.Nil {
		resp.First, resp.Last = page.First.String(), page.Last.String()
	}
	writeJSON(w, http.StatusOK, resp)
}

type syncResponse struct {
	Messages []message `json:"messages"`
	// Cursor is where to read on from (pass it as since).
	Cursor string `json:"cursor"`
	// More says that more is waiting: ask again at once.
	More bool `json:"more"`
}

// parseCursor reads an opaque cursor: the decimal revision of the user's
// archive stream to read from.
func parseCursor(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	user := userOf(r)
	v := r.URL.Query()
	since := v.Get("since")
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if id := r.Header.Get("Last-Event-ID"); sse && id != "" {
		since = id
	}
	cursor, err := parseCursor(since)
	if err != nil {
		badParam(w, "since", errors.New("not a cursor of this API"))
		return
	}
	max := 0
	if m := v.Get("max"); m != "" {
		if max, err = strconv.Atoi(m); err != nil || max < 1 {
			badParam(w, "max", errors.New("want a positive integer"))
			return
		}
	}
	var wait time.Duration
	if ws := v.Get("wait"); ws != "" {
		if wait, err = time.ParseDuration(ws); err != nil || wait < 0 {
			badParam(w, "wait", errors.New("want a duration such as 30s"))
			return
		}
		wait = min(wait, s.cfg.MaxWait)
	}
	if sse {
		s.stream(w, r, user, cursor, max)
		return
	}
	ctx := r.Context()
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		// Take the notification channel before reading, so an append
		// between the read and the wait is not missed.
		woken := s.notifier.wait(user.String())
		ch, err := s.cfg.Archive.Since(ctx, user, cursor, max)
		if err != nil {
			s.archiveError(w, r, err)
			return
		}
		if len(ch.Changes) > 0 || deadline == nil {
			resp := syncResponse{Messages: []message{}, Cursor: strconv.FormatUint(ch.Next, 10), More: ch.More}
			for _, c := range ch.Changes {
				resp.Messages = append(resp.Messages, toMessage(c.Message))
			}
			writeJSON(w, http.StatusOK, resp)
			return
		}
		// Only forgotten records were passed: the cursor moves on.
		cursor = ch.Next
		if !s.pause(r, woken, deadline) {
			writeJSON(w, http.StatusOK, syncResponse{Messages: []message{}, Cursor: strconv.FormatUint(cursor, 10)})
			return
		}
	}
}

// pause waits for a notification or the poll interval; false when the
// deadline passed or the request ended.
func (s *Server) pause(r *http.Request, woken <-chan struct{}, deadline <-chan time.Time) bool {
	poll := time.NewTimer(s.cfg.PollInterval)
	defer poll.Stop()
	select {
	case <-woken:
	case <-poll.C:
	case <-deadline:
		return false
	case <-r.Context().Done():
		return false
	}
	return true
}

// stream serves Server-Sent Events: each message is one "message" event
// whose id is the cursor after it, so a client that reconnects with
// Last-Event-ID resumes exactly there. It ends when the token expires.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, user jid.JID, cursor uint64, max int) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusNotAcceptable, "no_streaming", "this connection cannot stream")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	tok := r.Context().Value(tokenKey).(string)
	for {
		if _, err := s.tokens.lookup(tok); err != nil {
			fmt.Fprint(w, "event: end\ndata: {\"reason\":\"token_expired\"}\n\n")
			fl.Flush()
			return
		}
		woken := s.notifier.wait(user.String())
		ch, err := s.cfg.Archive.Since(r.Context(), user, cursor, max)
		if err != nil {
			if r.Context().Err() == nil {
				s.log.WithError(err).Warn("syncapi: event stream")
				fmt.Fprint(w, "event: end\ndata: {\"reason\":\"error\"}\n\n")
			}
			return
		}
		for _, c := range ch.Changes {
			if err := writeEvent(w, c.Next, toMessage(c.Message)); err != nil {
				return
			}
		}
		fl.Flush()
		cursor = ch.Next
		if ch.More {
			continue
		}
		if !s.pause(r, woken, nil) {
			return
		}
	}
}

func writeEvent(w io.Writer, next uint64, m message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: message\ndata: %s\n\n", next, data)
	return err
}
