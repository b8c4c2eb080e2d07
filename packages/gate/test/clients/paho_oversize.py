"""Eclipse Paho Python (1.6.x) over WebSocket at MQTT 5: connects, publishes one QoS 0 PUBLISH
of SIZE payload bytes on TOPIC, and prints what ended the connection as one JSON line:
{"connack": n, "disconnect": reason code or null, "rc": paho's return code}.

usage: paho_oversize.py PORT TOPIC SIZE
"""
import json
import sys

import paho.mqtt.client as mqtt

port, topic, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
seen = {"connack": None, "disconnect": None, "rc": None}


def on_connect(client, userdata, flags, reason_code, properties):
    seen["connack"] = reason_code.value
    client.publish(topic, b"p" * size, qos=0)


def on_disconnect(client, userdata, reason_code, properties=None):
    # A DISCONNECT from the server comes as a ReasonCodes object; a bare socket close as an int.
    if isinstance(reason_code, int):
        seen["rc"] = reason_code
    else:
        seen["disconnect"] = reason_code.value
    client.disconnect()


client = mqtt.Client(client_id="paho-py-oversize", protocol=mqtt.MQTTv5, transport="websockets")
client.ws_set_options(path="/mqtt")
client.on_connect = on_connect
client.on_disconnect = on_disconnect
client.connect("127.0.0.1", port, keepalive=30)
client.loop_forever()  # returns once on_disconnect has called disconnect()
print(json.dumps(seen))
