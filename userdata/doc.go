// Package userdata exports everything the server holds about one account
// and imports accounts from XEP-0227 files (issue 7: the data belongs to
// the user). It speaks no HTTP and no XMPP: the command line (verlauf
// export / import) and the HTTPS API call Export, Import and Verify.
//
// # Export
//
// Export(ctx, w, deps, user, format, opts) writes, in this order: the
// account (its JID; its SCRAM verifiers only with
// ExportOptions.IncludeCredentials, for an operator's migration, never in
// a user's own export), the roster (items with name, groups,
// subscription, ask and approved; inbound subscription requests), the
// vCard, the private XML, the block list, the archive preferences (if the
// user ever chose), the messages waiting in the offline queue, and the
// history. The history is read from the archive a page at a time and
// written as it is read, so memory stays flat for any length. The
// history and the queue are decrypted: the caller unlocks the user's keys
// (archive.Keys.Unlock) before, with the user's password; the operator
// cannot export a user's data without the user.
//
// The offline queue is read with archive.Drain, which does not mark
// anything delivered (only Delivered does). It retires the current
// offline data key, which is harmless: the next queued message starts a
// new key.
//
// Two formats:
//
// XEP0227 is the Portable Import/Export Format:
//
//	<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'><user name='alice'>
//	  <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-256'>…  (IncludeCredentials only)
//	  <query xmlns='jabber:iq:roster'><item jid=… subscription=… ask=… approved=…><group/></item></query>
//	  <presence xmlns='jabber:client' from=… type='subscribe'/>   (inbound requests, as Prosody and ejabberd write them)
//	  <vCard xmlns='vcard-temp'>…</vCard>
//	  <query xmlns='jabber:iq:private'>…</query>
//	  <blocklist xmlns='urn:xmpp:blocking'><item jid=…/></blocklist>   (XEP-0191's element)
//	  <prefs xmlns='urn:xmpp:mam:2' default=…><always/><never/></prefs>   (XEP-0313's element)
//	  <offline-messages><message xmlns='jabber:client'>…<delay xmlns='urn:xmpp:delay' stamp=…/></message></offline-messages>
//	  <archive xmlns='urn:xmpp:pie:0#mam'>
//	    <result xmlns='urn:xmpp:mam:2' id='archive id' v:with=… v:dir='in|out'>
//	      <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp=…/><message xmlns='jabber:client'>…</message></forwarded>
//	    </result>…
//	  </archive>
//	</user></host></server-data>
//
// The history uses the archive element of Prosody's mod_storage_xep0227
// (XEP-0227 1.1 itself defines none): MAM results as a MAM query would
// return them. verlauf adds two attributes in its own namespace
// (urn:verlauf:pie:0): with (the conversation partner) and dir, because
// from/to alone cannot always tell them (a message the user sent to
// themselves, a stanza without from). Other servers ignore them.
//
// JSONLines is one JSON object per line, each with a "kind": account,
// roster ({"item":{…}}), roster_request, vcard ({"xml":…}), private,
// blocklist ({"jid":…}), prefs, offline ({"stanza":…}) and one line per
// message ({"id","at","with","direction","stanza"}).
//
// # Manifest
//
// Both formats end with the manifest: counts per kind, the byte count and
// the SHA-256 of everything before the manifest. In XEP0227 it is an XML
// comment after </server-data> (<!-- verlauf-manifest {json} -->), which
// every XML reader skips; in JSON Lines it is the last line, with kind
// "manifest". Verify recomputes it. It proves the file whole, not
// authentic: whoever can change the file can write a matching manifest.
// Export also returns it, so that the HTTPS API can send it beside the
// file (a header, or a .manifest.json). ExportOptions.DetachedManifest
// leaves the trailer out, for a file that goes to Prosody: its XML parser
// (util.xml, XMPP's restricted XML) refuses comments, and
// mod_storage_xep0227 then loads nothing of the user (tests/interop).
//
// Server-specific fields that an export of an import may show differently:
// the offline messages' queue ids are not exported, and a re-imported
// offline message keeps the <delay/> of the first export; roster versions
// are not exported (an import numbers them on from the target's); the
// archive ids of messages from other servers are drawn on import (a UUIDv7
// carrying the message's time), so a second export shows verlauf's ids.
// An export of a verlauf import of a verlauf export is byte for byte the
// same file.
//
// # Import
//
// Import reads XEP-0227 as verlauf writes it, as Prosody's
// mod_storage_xep0227 writes it (scram-credentials, the archive element,
// subscription requests as presence) and as ejabberd's export_piefxis
// writes it (a main file that xi:includes one file per host; password
// attributes in plain or "scram:StoredKey,ServerKey,Salt,Iterations";
// offline-messages; the block list as a privacy list). Other elements
// (PEP, pubsub, other privacy lists) are skipped and counted in the
// report.
//
// The parser is restricted: encoding/xml in strict mode with no entity
// map, so nothing is ever expanded and an undefined entity is an error; a
// DTD (<!DOCTYPE …>) or any other declaration, and processing
// instructions but the XML declaration, are refused; only UTF-8 is read.
// Every token and each child of <user> is bounded (Limits.MaxElementBytes,
// 8 MiB), each archived or offline message too (MaxStanzaBytes, 256 KiB),
// as are depth and attributes. The reader stops at the bound instead of
// buffering a hostile element.
//
// All or nothing: the whole file is read and validated before anything is
// written (the history waits in a temporary file sealed under a key that
// exists only in memory), and accounts are checked against the store. A
// malformed file is refused with a *FileError giving the element and the
// line, and nothing has been written. A failure of the store itself while
// writing (a full disk) can still leave a user half imported.
//
// # Credentials and the keys that seal imported history
//
//   - A plaintext password in the file (older exports): the account is
//     registered with it as if the user had, and the history is sealed
//     under the user's own keys at once.
//   - SCRAM verifiers in the file: they are recorded as they are, so the
//     user keeps their password. With ImportOptions.Password (the user
//     imports their own file), the password is checked against them and
//     the archive identity is wrapped under the user's own ClientKeys: the
//     history is sealed under the user's keys at once.
//   - SCRAM verifiers, no password (an operator's bulk import): nobody
//     here knows the ClientKey, so the identity cannot be wrapped under
//     it. It is wrapped instead, per verifier hash, under a random interim
//     key that the server keeps in its key store
//     (archive.Keys.ProvisionInterim; UserReport.Interim says so). No
//     interim key is handed to the caller: a key given to an operator
//     would be one more copy to lose, and the server needs it anyway at
//     the login that reseals.
//
// What protects such an account's history until the user's first login
// is therefore the server's own disks and nothing else: whoever reads the
// key store (a copy of the disk or of a backup) opens the identity with
// the interim key and, with the event log, reads the imported history and
// every message archived or queued for the user until then. The user's
// password plays no part yet. Operators who cannot accept that window
// should ask users to import their own files (ImportOptions.Password),
// or keep the key store's disks and backups as guarded as the export file
// they imported.
//
// At each successful login the front end calls archive.Keys.Reseal with
// the ClientKeys the login yielded, then Unlock. Reseal checks each
// ClientKey against the verifier's StoredKey, opens the identity with the
// interim key, wraps it under the ClientKey and deletes the interim key
// of that hash, compacting it out of the key store's files (the key
// store's shredding; the same reach and limits as crypto-shredding, see
// package keystore). For accounts without interim keys it is one lookup.
// A SCRAM login yields the ClientKey of its own hash only: an account
// with verifiers of both hashes (a verlauf export with credentials) keeps
// the other hash's interim key until a login with that mechanism, a PLAIN
// login (which yields both) or a password change; dropping that wrap
// instead would leave later logins with the other mechanism unable to
// read the history, and no key for it can be made without the password.
// Prosody and ejabberd export one hash, so for their accounts the first
// login ends the interim key. An administrator's password reset before
// the first login keeps the history (the server opens it with the
// interim key) and ends the interim keys.
//
// An account that exists is refused unless ImportOptions.MergeExisting;
// merged, its credentials and keys stay as they are.
package userdata
