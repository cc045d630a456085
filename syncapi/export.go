package syncapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/userdata"
)

// manifestTrailer is the HTTP trailer that repeats the manifest at the
// end of an export. The file itself ends with the manifest too (see
// userdata), which is what a browser download keeps: browsers drop
// trailers.
const manifestTrailer = "Verlauf-Manifest"

// exportFormat reads the format parameter; empty means XEP-0227.
func exportFormat(s string) (userdata.Format, bool) {
	switch userdata.Format(s) {
	case "", userdata.XEP0227:
		return userdata.XEP0227, true
	case userdata.JSONLines:
		return userdata.JSONLines, true
	}
	return "", false
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	format, ok := exportFormat(r.URL.Query().Get("format"))
	if !ok {
		badParam(w, "format", errors.New(`want "xep0227" or "jsonl"`))
		return
	}
	if f := s.streamExport(w, r, userOf(r), format); f != nil {
		writeFailure(w, f)
	}
}

// exportFile names the download and gives its media type.
func exportFile(user jid.JID, format userdata.Format, date string) (name, mediaType string) {
	// Only characters that need no quoting in any browser's download
	// name: a localpart may hold almost anything.
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '@':
			return r
		}
		return '_'
	}, user.String())
	if format == userdata.JSONLines {
		return "verlauf-" + clean + "-" + date + ".jsonl", "application/jsonl; charset=utf-8"
	}
	return "verlauf-" + clean + "-" + date + ".xml", "application/xml; charset=utf-8"
}

// streamExport writes user's export as a download. It answers a failure
// only while nothing has been sent; once the file has begun, an error
// aborts the response, so that the client sees a broken transfer (and the
// manifest check fails) rather than a file that looks whole.
func (s *Server) streamExport(w http.ResponseWriter, r *http.Request, user jid.JID, format userdata.Format) *failure {
	if s.cfg.UserData.Store == nil {
		return &failure{status: http.StatusServiceUnavailable, code: "export_unavailable", msg: "this server is not configured for exports"}
	}
	name, mediaType := exportFile(user, format, s.cfg.Clock.Now().UTC().Format("2006-01-02"))
	lw := &lazyWriter{w: w, start: func(h http.Header) {
		h.Set("Content-Type", mediaType)
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		h.Set("Trailer", manifestTrailer)
	}}
	m, err := userdata.Export(r.Context(), lw, s.cfg.UserData, user, format, userdata.ExportOptions{})
	if err != nil {
		if !lw.started {
			return s.classify(r, err)
		}
		s.log.WithError(err).WithField("user", user.String()).Warn("syncapi: export aborted")
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		// Export always writes at least the manifest.
		return &failure{status: http.StatusInternalServerError, code: "internal", msg: "empty export"}
	}
	if b, err := json.Marshal(m); err == nil {
		w.Header().Set(manifestTrailer, string(b))
	}
	return nil
}

// lazyWriter sends the download's headers at the first write, so that an
// error before it can still be answered as an error.
type lazyWriter struct {
	w       http.ResponseWriter
	start   func(http.Header)
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.start(l.w.Header())
		l.w.WriteHeader(http.StatusOK)
	}
	n, err := l.w.Write(p)
	if err != nil {
		return n, fmt.Errorf("syncapi: export: %w", err)
	}
	return n, nil
}
