#!/usr/bin/env sh
# Makes a throwaway CA and a server certificate for localhost / 127.0.0.1 in this folder
# (ca.crt, server.key, server.crt), for examples/gate.yaml. Never commit the keys.
set -eu
cd "$(dirname "$0")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 365 -subj "/CN=mqgate example CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -out server.crt -extfile server.ext
rm -f server.csr server.ext ca.srl
echo "made $(pwd)/ca.crt server.key server.crt"
