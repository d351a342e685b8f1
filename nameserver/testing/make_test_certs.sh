#!/bin/bash
# make_test_certs.sh DIR: the certificates of //nameserver:nameserver_test,
# made fresh with openssl (Debian 12: OpenSSL 3.0) in DIR.
#
#   ca.crt                   the name server's CA ("CN=gasp test CA")
#   server.crt/.key          the name server: subjectAltName 127.0.0.1, ::1, localhost
#   solver.crt/.key          client "CN=solver,O=gasp" (registers the test's services)
#   alice.crt/.key           client "CN=alice,O=gasp" (the test's trusted principal)
#   bob.crt/.key             client "CN=bob,O=gasp" (untrusted)
#   mallory.crt/.key         client "CN=alice,O=gasp" signed by another CA (rogue-ca.crt)
#   expired.crt/.key         client "CN=alice,O=gasp" signed by the CA, valid only
#                            2020-01-01..2020-01-02
#   notyet.crt/.key          client "CN=alice,O=gasp" signed by the CA, valid only
#                            from 2099-01-01 (not yet valid)
#   inter.crt/.key           an intermediate CA ("CN=gasp test intermediate CA")
#                            signed by the CA
#   carol.crt/.key           client "CN=carol,O=gasp" signed by the intermediate;
#                            carol.crt holds the chain: carol's certificate, then
#                            the intermediate's
#   ranks.crt/.key           "CN=ranks,O=gasp", good for TLS clients and servers:
#                            the ranks of a job (tests/services_test.sh), which
#                            serve function-shipped calls with it
#
# EC P-256 keys: quick to generate. The expired and the not yet valid
# certificates need `openssl ca` (-startdate/-enddate): `openssl x509 -req`
# cannot set a validity period that does not start now.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {  # ca NAME SUBJECT
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "$2" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.crt"
}

leaf() {  # leaf NAME SUBJECT CA EXTFILE
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 30 \
    -sha256 -extfile "$4" -out "$1.crt" 2>/dev/null
}

cat >server.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT
cat >client.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
cat >both.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
EXT
cat >inter.ext <<'EXT'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
EXT

ca ca "/CN=gasp test CA"
ca rogue-ca "/CN=gasp test CA"   # same name, other key: a look-alike
leaf server "/CN=gasp_nameserver" ca server.ext
leaf solver "/O=gasp/CN=solver" ca client.ext
leaf alice "/O=gasp/CN=alice" ca client.ext
leaf bob "/O=gasp/CN=bob" ca client.ext
leaf mallory "/O=gasp/CN=alice" rogue-ca client.ext
leaf inter "/CN=gasp test intermediate CA" ca inter.ext
leaf carol "/O=gasp/CN=carol" inter client.ext
leaf ranks "/O=gasp/CN=ranks" ca both.ext
cat inter.crt >>carol.crt

# The expired and the not yet valid ones: `openssl ca` with an explicit
# validity in the past or in the future.
mkdir -p ca-db
: >ca-db/index.txt
echo 1000 >ca-db/serial
cat >ca.cnf <<'CNF'
[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any
unique_subject = no
x509_extensions = client_ext
[any]
organizationName = optional
commonName = supplied
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
key expired.key
openssl req -new -key expired.key -subj "/O=gasp/CN=alice" -out expired.csr
openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr \
  -startdate 20200101000000Z -enddate 20200102000000Z -notext -preserveDN \
  -out expired.crt 2>/dev/null
key notyet.key
openssl req -new -key notyet.key -subj "/O=gasp/CN=alice" -out notyet.csr
openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in notyet.csr \
  -startdate 20990101000000Z -enddate 20991231000000Z -notext -preserveDN \
  -out notyet.crt 2>/dev/null

# Fail here, not in the test, when something did not come out right.
for c in server solver alice bob expired notyet inter carol; do
  openssl x509 -in $c.crt -noout >/dev/null
done
openssl verify -CAfile ca.crt server.crt solver.crt alice.crt bob.crt inter.crt >/dev/null
openssl verify -CAfile ca.crt -untrusted inter.crt carol.crt >/dev/null
if openssl verify -CAfile ca.crt carol.crt >/dev/null 2>&1; then
  echo "carol.crt verifies without its intermediate" >&2; exit 1
fi
if openssl verify -CAfile ca.crt mallory.crt >/dev/null 2>&1; then
  echo "mallory.crt verifies against ca.crt" >&2; exit 1
fi
if openssl verify -CAfile ca.crt expired.crt >/dev/null 2>&1; then
  echo "expired.crt is not expired" >&2; exit 1
fi
if openssl verify -CAfile ca.crt notyet.crt >/dev/null 2>&1; then
  echo "notyet.crt is already valid" >&2; exit 1
fi
