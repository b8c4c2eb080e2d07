/*
 * Eclipse Paho C (MQTTClient, 1.3.x) over WebSocket at MQTT 5: connects to URI, publishes one
 * QoS 0 PUBLISH of SIZE payload bytes on TOPIC and prints the reason code of the server's
 * DISCONNECT as one JSON line: {"connack": n, "disconnect": reason code}.
 *
 * build: gcc -o paho_oversize paho_oversize.c -lpaho-mqtt3c
 * usage: paho_oversize URI TOPIC SIZE      (URI: ws://127.0.0.1:PORT/mqtt)
 */
#include <MQTTClient.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ended = PTHREAD_COND_INITIALIZER;
static int disconnect_code = -1;
static int done = 0;

static void finish(int code) {
  pthread_mutex_lock(&lock);
  if (!done) disconnect_code = code;
  done = 1;
  pthread_cond_signal(&ended);
  pthread_mutex_unlock(&lock);
}

/* The server's DISCONNECT (MQTT 5): its reason code. */
static void on_disconnected(void *context, MQTTProperties *props, enum MQTTReasonCodes code) {
  (void)context;
  (void)props;
  finish((int)code);
}

/* The connection went without a DISCONNECT. */
static void on_lost(void *context, char *cause) {
  (void)context;
  (void)cause;
  finish(-1);
}

static int on_message(void *context, char *topic, int len, MQTTClient_message *m) {
  (void)context;
  (void)len;
  MQTTClient_freeMessage(&m);
  MQTTClient_free(topic);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s URI TOPIC SIZE\n", argv[0]);
    return 2;
  }
  MQTTClient client;
  MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
  create.MQTTVersion = MQTTVERSION_5;
  if (MQTTClient_createWithOptions(&client, argv[1], "paho-c-oversize", MQTTCLIENT_PERSISTENCE_NONE, NULL, &create) != MQTTCLIENT_SUCCESS) return 3;
  MQTTClient_setCallbacks(client, NULL, on_lost, on_message, NULL);
  MQTTClient_setDisconnected(client, NULL, on_disconnected);
  MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer5_ws;
  opts.keepAliveInterval = 30;
  opts.cleanstart = 1;
  MQTTResponse r = MQTTClient_connect5(client, &opts, NULL, NULL);
  int connack = r.reasonCode;
  MQTTResponse_free(r);
  if (connack != 0) {
    printf("{\"connack\": %d, \"disconnect\": null}\n", connack);
    return 1;
  }
  size_t size = (size_t)atol(argv[3]);
  char *payload = malloc(size);
  memset(payload, 'p', size);
  MQTTClient_message m = MQTTClient_message_initializer;
  m.payload = payload;
  m.payloadlen = (int)size;
  m.qos = 0;
  r = MQTTClient_publishMessage5(client, argv[2], &m, NULL);
  MQTTResponse_free(r);
  pthread_mutex_lock(&lock);
  while (!done) pthread_cond_wait(&ended, &lock);
  pthread_mutex_unlock(&lock);
  printf("{\"connack\": %d, \"disconnect\": %d}\n", connack, disconnect_code);
  MQTTClient_destroy(&client);
  free(payload);
  return 0;
}
