package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/userdata"
)

const exportUsage = `usage: verlauf export --user JID --out FILE [--format xep0227|jsonl] [--config FILE]

Writes everything the running server holds about one account to FILE:
account, roster, vCard, private XML, block list, archive preferences,
waiting offline messages and the whole message history. The history is
encrypted under the user's password, so the command asks for it: the
operator cannot export a user's data without the user.

FILE is written whole or not at all (mode 0600), and its manifest (counts
per kind, byte count, SHA-256) beside it as FILE.manifest.json. The password
is read from the terminal, or as one line from standard input when that is
not a terminal (for scripts).
`

// adminIdle is how long a streaming admin operation may stand still
// (no byte read or written) before the server gives up on it.
const adminIdle = time.Minute

// exportProgress is the payload of the export's P frames.
type exportProgress struct {
	Messages int `json:"messages"`
}

func cmdExport(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, exportUsage) }
	user := fs.String("user", "", "the account to export (alice or alice@domain)")
	format := fs.String("format", string(userdata.XEP0227), "xep0227 or jsonl")
	out := fs.String("out", "", "the file to write")
	configPath := fs.String("config", "", "the server's TOML config file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 0:
		fs.Usage()
		return fmt.Errorf("export: unexpected argument %q", pos[0])
	case *user == "":
		fs.Usage()
		return errors.New("export: --user is required")
	case *out == "":
		fs.Usage()
		return errors.New("export: --out is required")
	case *format != string(userdata.XEP0227) && *format != string(userdata.JSONLines):
		return fmt.Errorf("export: --format %q is not xep0227 or jsonl", *format)
	}
	// A file that cannot be written is said before the password is asked.
	if st, err := os.Stat(filepath.Dir(*out)); err != nil {
		return fmt.Errorf("export: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("export: %s is not a directory", filepath.Dir(*out))
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	password, err := readPassword(stdin, stderr, false)
	if err != nil {
		return err
	}
	req := adminRequest{Op: "export", JID: *user, Password: password, Format: *format}
	m, err := exportTo(ctx, adminSocketPath(cfg), req, *out, newProgress(stdout, stderr, -1, false, "exporting"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %s to %s (%s)\n", m.User, *out, m.Format)
	fmt.Fprintf(stdout, "  %s\n", formatCounts(m.Counts))
	fmt.Fprintf(stdout, "  %d bytes, sha256 %s\n", m.Bytes, m.SHA256)
	fmt.Fprintf(stdout, "  manifest %s\n", manifestPath(*out))
	return nil
}

func manifestPath(out string) string { return out + ".manifest.json" }

// exportTo runs an export on the server and writes it to out, whole or
// not at all: the bytes go to a temporary file beside out, are checked
// against the manifest as they arrive, and the file is renamed to out only
// when the server's trailer says the export is complete and the content
// matches it.
func exportTo(ctx context.Context, sock string, req adminRequest, out string, bar progress) (userdata.Manifest, error) {
	c, stop, err := adminDial(ctx, sock, req)
	if err != nil {
		return userdata.Manifest{}, err
	}
	defer stop()
	defer c.Close()
	br := bufio.NewReaderSize(c, chunkSize+5)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return userdata.Manifest{}, streamError(ctx, "export", err)
	}
	var head adminResponse
	if err := json.Unmarshal(line, &head); err != nil {
		return userdata.Manifest{}, fmt.Errorf("export: admin socket: %w", err)
	}
	if head.Error != "" {
		return userdata.Manifest{}, responseError("export", out, head)
	}

	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.partial")
	if err != nil {
		return userdata.Manifest{}, fmt.Errorf("export: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// The content is verified as it arrives, on another core, instead of
	// reading the file again afterwards.
	pr, pw := io.Pipe()
	defer pw.CloseWithError(errors.New("export aborted"))
	type verified struct {
		m   userdata.Manifest
		err error
	}
	vc := make(chan verified, 1)
	go func() {
		m, err := userdata.Verify(pr)
		io.Copy(io.Discard, pr) // never leave the writer blocked
		vc <- verified{m, err}
	}()
	fw := bufio.NewWriterSize(tmp, 256<<10)
	w := io.MultiWriter(fw, pw)

	var trailer adminResponse
	var buf []byte
frames:
	for {
		kind, p, err := readFrame(br, &buf)
		if err != nil {
			return userdata.Manifest{}, streamError(ctx, "export", err)
		}
		switch kind {
		case frameData:
			if _, err := w.Write(p); err != nil {
				return userdata.Manifest{}, fmt.Errorf("export: writing %s: %w", out, err)
			}
		case frameProgress:
			var ep exportProgress
			if json.Unmarshal(p, &ep) == nil {
				bar.set(int64(ep.Messages))
			}
		case frameTrailer:
			if err := json.Unmarshal(p, &trailer); err != nil {
				return userdata.Manifest{}, fmt.Errorf("export: admin socket: %w", err)
			}
			break frames
		default:
			return userdata.Manifest{}, fmt.Errorf("export: %w: %q", errFrame, kind)
		}
	}
	bar.finish()
	if trailer.Error != "" {
		return userdata.Manifest{}, responseError("export", out, trailer)
	}
	if trailer.Manifest == nil {
		return userdata.Manifest{}, errors.New("export: the server sent no manifest")
	}
	m := *trailer.Manifest
	pw.Close()
	v := <-vc
	if v.err != nil {
		return userdata.Manifest{}, fmt.Errorf("export: the file received is not whole: %w", v.err)
	}
	if v.m.SHA256 != m.SHA256 || v.m.Bytes != m.Bytes {
		return userdata.Manifest{}, fmt.Errorf("export: the file received does not match the server's manifest (sha256 %s, want %s)", v.m.SHA256, m.SHA256)
	}
	if err := fw.Flush(); err != nil {
		return userdata.Manifest{}, fmt.Errorf("export: writing %s: %w", out, err)
	}
	if err := tmp.Sync(); err != nil {
		return userdata.Manifest{}, fmt.Errorf("export: writing %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return userdata.Manifest{}, fmt.Errorf("export: writing %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return userdata.Manifest{}, fmt.Errorf("export: %w", err)
	}
	done = true
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return userdata.Manifest{}, err
	}
	if err := writeFileAtomic(manifestPath(out), append(mj, '\n')); err != nil {
		return userdata.Manifest{}, fmt.Errorf("export: the export is in %s, but its manifest could not be written: %w", out, err)
	}
	syncDir(filepath.Dir(out))
	return m, nil
}

// writeFileAtomic writes b to path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// syncDir makes the renames durable; a failure only loses durability,
// which the file system may not offer anyway.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// streamError words a connection that ended before the trailer.
func streamError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: interrupted: %w", op, ctx.Err())
	}
	return fmt.Errorf("%s: the server ended the %s before it was complete: %w", op, op, err)
}

// responseError words a refusal of the server for the operator.
func responseError(op, file string, r adminResponse) error {
	switch r.Code {
	case codeAuthFailed:
		return fmt.Errorf("%s: %s: refused: %s", op, file, r.Error)
	case codeMalformed:
		if fe := r.FileError; fe != nil {
			return fmt.Errorf("%s %s: malformed file, nothing was imported: %s:%d: <%s>: %s", op, file, cmp.Or(fe.File, file), fe.Line, fe.Element, fe.Message)
		}
	}
	return fmt.Errorf("%s %s: %s", op, file, r.Error)
}

// formatCounts lists counts in a fixed order, messages first.
func formatCounts(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if (a == userdata.KindMessage) != (b == userdata.KindMessage) {
			if a == userdata.KindMessage {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// serveExport checks the user's password, opens their keys for the
// duration and streams the export: a JSON header line (an error ends the
// exchange there), then D frames with the file, P frames with the number
// of messages written, and a T frame with the manifest or an error.
func (s *adminServer) serveExport(ctx context.Context, c net.Conn, req adminRequest) adminResponse {
	bw := bufio.NewWriterSize(idleConn{c, adminIdle}, chunkSize+5)
	refuse := func(r adminResponse) adminResponse {
		json.NewEncoder(bw).Encode(r)
		bw.Flush()
		return r
	}
	if s.data.Store == nil {
		return refuse(adminResponse{Error: "export is not available on this server"})
	}
	user, err := userJID(req.JID, s.domain)
	if err != nil {
		return refuse(adminResponse{Error: err.Error()})
	}
	format := userdata.Format(req.Format)
	if format != userdata.XEP0227 && format != userdata.JSONLines {
		return refuse(adminResponse{Error: fmt.Sprintf("unknown format %q", req.Format)})
	}
	// Whoever can reach the socket could otherwise guess passwords here
	// as fast as the key derivation allows.
	key := "user:" + user.String()
	if s.throttle.Blocked(key) {
		return refuse(adminResponse{Code: codeThrottled, Error: fmt.Sprintf("too many wrong passwords for %s; try again later", user)})
	}
	err = s.accts.VerifyPassword(ctx, user, req.Password)
	if errors.Is(err, accounts.ErrAuthFailed) {
		s.throttle.Fail(key)
		s.log.WithField("user", user.String()).Info("admin: export refused: wrong password")
		return refuse(adminResponse{Code: codeAuthFailed, Error: fmt.Sprintf("wrong password for %s, or no such account", user)})
	}
	if err != nil {
		return refuse(adminResponse{Error: err.Error()})
	}
	s.throttle.Succeed(key)
	if err := s.unlock(ctx, user, req.Password); err != nil {
		return refuse(adminResponse{Error: fmt.Sprintf("cannot open the history of %s: %v", user, err)})
	}
	defer s.keys.Release(user)
	if err := json.NewEncoder(bw).Encode(adminResponse{}); err != nil {
		return adminResponse{Error: err.Error()}
	}
	m, err := userdata.Export(ctx, dataWriter{bw}, s.data, user, format, userdata.ExportOptions{
		Progress: func(n int) { writeJSONFrame(bw, frameProgress, exportProgress{Messages: n}) },
	})
	resp := adminResponse{Manifest: &m}
	if err != nil {
		resp = adminResponse{Error: err.Error()}
	}
	if err := writeJSONFrame(bw, frameTrailer, resp); err == nil {
		bw.Flush()
	}
	return resp
}

// unlock opens user's archive keys with the ClientKey of password, as a
// PLAIN login or the HTTPS API's login does (provisioning keys for an
// account that has none), and indexes what arrived while the user was
// away, so the export holds it.
func (s *adminServer) unlock(ctx context.Context, user jid.JID, password string) error {
	hash := domain.HashSHA256
	v, err := s.accts.Credentials(ctx, user, hash)
	if errors.Is(err, accounts.ErrNotFound) {
		hash = domain.HashSHA1
		v, err = s.accts.Credentials(ctx, user, hash)
	}
	if err != nil {
		return err
	}
	ck, err := archive.ClientKeyFromPassword(v, password)
	if err != nil {
		return err
	}
	defer clear(ck)
	err = s.keys.Unlock(ctx, user, hash, ck)
	if errors.Is(err, archive.ErrNoKeys) {
		if err = s.keys.Provision(ctx, user, map[string][]byte{hash: ck}); err == nil {
			err = s.keys.Unlock(ctx, user, hash, ck)
		}
	}
	if err != nil {
		return err
	}
	if s.indexPending != nil {
		if _, err := s.indexPending(ctx, user); err != nil {
			s.keys.Release(user)
			return err
		}
	}
	return nil
}
