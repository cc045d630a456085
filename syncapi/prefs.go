package syncapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
)

// prefsBody is XEP-0313 preferences in JSON: the same state as MAM prefs.
type prefsBody struct {
	Default string   `json:"default"`
	Always  []string `json:"always"`
	Never   []string `json:"never"`
}

func toPrefs(p domain.ArchivePrefs) prefsBody {
	out := prefsBody{Default: string(p.Default), Always: p.Always, Never: p.Never}
	if out.Always == nil {
		out.Always = []string{}
	}
	if out.Never == nil {
		out.Never = []string{}
	}
	return out
}

func (s *Server) getPrefs(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Archive.Prefs(r.Context(), userOf(r))
	if err != nil {
		s.archiveError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPrefs(p))
}

func (s *Server) putPrefs(w http.ResponseWriter, r *http.Request) {
	var req prefsBody
	if !readJSON(w, r, &req) {
		return
	}
	mode := domain.ArchiveMode(req.Default)
	if !mode.Valid() {
		writeError(w, http.StatusBadRequest, "invalid_argument", `default must be "always", "never" or "roster"`)
		return
	}
	parse := func(ss []string) ([]jid.JID, bool) {
		out := make([]jid.JID, 0, len(ss))
		for _, s := range ss {
			j, err := jid.Parse(s)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid_argument", "not a JID: "+s)
				return nil, false
			}
			out = append(out, j)
		}
		return out, true
	}
	always, ok := parse(req.Always)
	if !ok {
		return
	}
	never, ok := parse(req.Never)
	if !ok {
		return
	}
	p, err := s.cfg.Archive.SetPrefs(r.Context(), userOf(r), mode, always, never)
	if err != nil {
		s.archiveError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPrefs(p))
}

// forgetRequest selects what to forget: all, or any of start, end, with.
type forgetRequest struct {
	All   bool       `json:"all"`
	Start *time.Time `json:"start"`
	End   *time.Time `json:"end"`
	With  string     `json:"with"`
}

type forgetResponse struct {
	Count    int        `json:"count"`
	First    *time.Time `json:"first,omitempty"`
	Last     *time.Time `json:"last,omitempty"`
	FirstID  string     `json:"first_id,omitempty"`
	LastID   string     `json:"last_id,omitempty"`
	Resealed int        `json:"resealed"`
	Keys     int        `json:"keys_deleted"`
}

func (s *Server) forget(w http.ResponseWriter, r *http.Request) {
	var req forgetRequest
	if !readJSON(w, r, &req) {
		return
	}
	var sel archive.ForgetSelection
	sel.All = req.All
	if req.Start != nil {
		sel.Start = *req.Start
	}
	if req.End != nil {
		sel.End = *req.End
	}
	if req.With != "" {
		j, err := jid.Parse(req.With)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_argument", "with is not a JID")
			return
		}
		sel.With = j
	}
	if sel.All && (req.Start != nil || req.End != nil || req.With != "") {
		writeError(w, http.StatusBadRequest, "invalid_argument", "all excludes start, end and with")
		return
	}
	res, err := s.cfg.Archive.Forget(r.Context(), userOf(r), sel)
	if err != nil {
		s.archiveError(w, r, err)
		return
	}
	out := forgetResponse{Count: res.Count, Resealed: res.Resealed, Keys: res.KeysDeleted}
	if res.First != uuid.Nil {
		f, l := domain.ArchiveIDTime(res.First), domain.ArchiveIDTime(res.Last)
		out.First, out.Last = &f, &l
		out.FirstID, out.LastID = res.First.String(), res.Last.String()
	}
	writeJSON(w, http.StatusOK, out)
}
