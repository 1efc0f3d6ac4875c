package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// whsecPrefix marks a secret written in the Standard Webhooks form.
const whsecPrefix = "whsec_"

// Sign returns the X-Hub-Signature value "sha256=<hex HMAC-SHA256(key, body)>"
// and the Standard Webhooks webhook-signature value
// "v1,<base64 HMAC-SHA256(key, msgID.timestamp.body)>", timestamp being ts in
// Unix seconds.
//
// The key is the secret's bytes as written, except that a secret in the
// Standard Webhooks form "whsec_<base64>" is keyed by its decoded bytes, so
// receivers can verify with a stock Standard Webhooks library; if the part
// after the prefix is not valid base64, the secret's bytes are used as
// written.
func Sign(secret, msgID string, ts time.Time, body []byte) (hubSignature, webhookSignature string) {
	key := signingKey(secret)

	m := hmac.New(sha256.New, key)
	m.Write(body)
	hubSignature = "sha256=" + hex.EncodeToString(m.Sum(nil))

	m = hmac.New(sha256.New, key)
	m.Write([]byte(msgID + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	m.Write(body)
	webhookSignature = "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	return hubSignature, webhookSignature
}

func signingKey(secret string) []byte {
	if enc, ok := strings.CutPrefix(secret, whsecPrefix); ok {
		if key, err := base64.StdEncoding.DecodeString(enc); err == nil && len(key) > 0 {
			return key
		}
	}
	return []byte(secret)
}
