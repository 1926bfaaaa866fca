#!/usr/bin/env python3
"""Writes packaging/grafana/metrics-agent.json, the Grafana dashboard for metrics-agent on an
InfluxDB 1.x (InfluxQL) data source. Every query is raw InfluxQL so that the end-to-end test can
run it against a real InfluxDB with the template variables filled in.

Variables: $host (telegraf's host tag), $ping_url, $http_server, $tcp_server, $dns_server.
Run: python3 packaging/grafana/generate.py
"""
import json
import os

DS = {"type": "influxdb", "uid": "${DS_INFLUXDB}"}


def panel(pid, title, queries, x, y, w=12, h=8, unit="short", kind="timeseries", stack=False, desc=""):
    targets = []
    for i, (q, alias) in enumerate(queries):
        targets.append({
            "datasource": DS,
            "refId": chr(ord("A") + i),
            "query": q,
            "rawQuery": True,
            "resultFormat": "time_series",
            "alias": alias,
        })
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if stack:
        p["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal"}, "fillOpacity": 60}
    return p


def row(pid, title, y):
    return {"id": pid, "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


H = "\"host\" =~ /^$host$/"
T = "$timeFilter"
G = "GROUP BY time($__interval)"


def var(name, label, query, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS, "query": query,
        "definition": query, "refresh": 2, "multi": multi, "includeAll": True,
        "current": {"text": "All", "value": "$__all"}, "sort": 1,
    }


panels = []
y = 0
panels.append(row(1, "Probes", y)); y += 1
panels.append(panel(2, "Ping loss per target", [
    (f"SELECT mean(\"percent_packet_loss\") FROM \"ping\" WHERE {H} AND \"url\" =~ /^$ping_url$/ AND {T} {G}, \"url\" fill(null)", "$tag_url"),
], 0, y, unit="percent", desc="100 = target down (no reply)."))
panels.append(panel(3, "Ping round-trip (median, p95)", [
    (f"SELECT mean(\"median_response_ms\") FROM \"ping\" WHERE {H} AND \"url\" =~ /^$ping_url$/ AND {T} {G}, \"url\" fill(null)", "$tag_url median"),
    (f"SELECT mean(\"p95_response_ms\") FROM \"ping\" WHERE {H} AND \"url\" =~ /^$ping_url$/ AND {T} {G}, \"url\" fill(null)", "$tag_url p95"),
], 12, y, unit="ms")); y += 8
panels.append(panel(4, "HTTP phases (stacked = response_time)", [
    (f"SELECT mean(\"dns_time\") AS \"dns\", mean(\"connect_time\") AS \"connect\", mean(\"tls_time\") AS \"tls\", mean(\"ttfb\") AS \"ttfb\" FROM \"http_response\" WHERE {H} AND \"server\" =~ /^$http_server$/ AND {T} {G}, \"server\" fill(null)", "$tag_server $col"),
], 0, y, unit="s", stack=True, desc="DNS, TCP connect, TLS handshake and time to first byte, each on a fresh connection; a phase that did not happen is absent."))
panels.append(panel(5, "HTTP up (result_code 0) and status", [
    (f"SELECT last(\"result_code\") FROM \"http_response\" WHERE {H} AND \"server\" =~ /^$http_server$/ AND {T} {G}, \"server\" fill(previous)", "$tag_server result_code"),
    (f"SELECT last(\"http_response_code\") FROM \"http_response\" WHERE {H} AND \"server\" =~ /^$http_server$/ AND {T} {G}, \"server\" fill(previous)", "$tag_server status"),
], 12, y)); y += 8
panels.append(panel(6, "TCP connect time and result", [
    (f"SELECT mean(\"response_time\") FROM \"net_response\" WHERE {H} AND \"server\" =~ /^$tcp_server$/ AND {T} {G}, \"server\", \"port\" fill(null)", "$tag_server:$tag_port"),
    (f"SELECT last(\"result_code\") FROM \"net_response\" WHERE {H} AND \"server\" =~ /^$tcp_server$/ AND {T} {G}, \"server\", \"port\" fill(previous)", "$tag_server:$tag_port result_code"),
], 0, y, unit="s"))
panels.append(panel(7, "DNS query time and rcode", [
    (f"SELECT mean(\"query_time_ms\") FROM \"dns_query\" WHERE {H} AND \"server\" =~ /^$dns_server$/ AND {T} {G}, \"server\", \"domain\" fill(null)", "$tag_server $tag_domain"),
    (f"SELECT last(\"rcode_value\") FROM \"dns_query\" WHERE {H} AND \"server\" =~ /^$dns_server$/ AND {T} {G}, \"server\", \"domain\" fill(previous)", "$tag_server $tag_domain rcode"),
], 12, y, unit="ms")); y += 8
panels.append(panel(8, "Certificate days left (leaf)", [
    (f"SELECT last(\"expiry\") / 86400 FROM \"x509_cert\" WHERE {H} AND \"type\" = 'leaf' AND {T} GROUP BY \"source\", \"common_name\"", "$tag_source"),
    (f"SELECT last(\"tls_cert_expiry_s\") / 86400 FROM \"http_response\" WHERE {H} AND \"server\" =~ /^$http_server$/ AND {T} GROUP BY \"server\"", "$tag_server"),
], 0, y, unit="d", kind="stat", w=24, h=5)); y += 5

panels.append(row(9, "Host", y)); y += 1
panels.append(panel(10, "CPU busy", [
    (f"SELECT 100 - mean(\"usage_idle\") FROM \"cpu\" WHERE {H} AND \"cpu\" = 'cpu-total' AND {T} {G} fill(null)", "busy"),
    (f"SELECT mean(\"usage_iowait\") FROM \"cpu\" WHERE {H} AND \"cpu\" = 'cpu-total' AND {T} {G} fill(null)", "iowait"),
], 0, y, unit="percent"))
panels.append(panel(11, "Memory used", [
    (f"SELECT mean(\"used_percent\") FROM \"mem\" WHERE {H} AND {T} {G} fill(null)", "used"),
], 12, y, unit="percent")); y += 8
panels.append(panel(12, "Disk used per mount", [
    (f"SELECT last(\"used_percent\") FROM \"disk\" WHERE {H} AND {T} {G}, \"path\" fill(previous)", "$tag_path"),
], 0, y, unit="percent"))
panels.append(panel(13, "Network traffic per interface", [
    (f"SELECT non_negative_derivative(mean(\"bytes_recv\"), 1s) * 8 FROM \"net\" WHERE {H} AND {T} {G}, \"interface\" fill(null)", "$tag_interface in"),
    (f"SELECT non_negative_derivative(mean(\"bytes_sent\"), 1s) * 8 FROM \"net\" WHERE {H} AND {T} {G}, \"interface\" fill(null)", "$tag_interface out"),
], 12, y, unit="bps")); y += 8
panels.append(panel(14, "Load", [
    (f"SELECT mean(\"load1\") FROM \"system\" WHERE {H} AND {T} {G} fill(null)", "load1"),
], 0, y, w=24, h=6)); y += 6

panels.append(row(15, "Agent health", y)); y += 1
panels.append(panel(16, "Lines written and dropped per second", [
    (f"SELECT non_negative_derivative(last(\"metrics_written\"), 1s) FROM \"metrics_agent\" WHERE {H} AND {T} {G} fill(null)", "written"),
    (f"SELECT non_negative_derivative(last(\"metrics_dropped\"), 1s) FROM \"metrics_agent\" WHERE {H} AND {T} {G} fill(null)", "dropped"),
], 0, y, unit="short", desc="Dropped lines mean telegraf did not read stdout fast enough and the bounded queue overflowed."))
panels.append(panel(17, "Restarts, panics and gather errors per input", [
    (f"SELECT non_negative_difference(last(\"restarts\")) FROM \"metrics_agent_gather\" WHERE {H} AND {T} {G}, \"input\", \"instance\" fill(null)", "$tag_instance restarts"),
    (f"SELECT non_negative_difference(last(\"panics\")) FROM \"metrics_agent_gather\" WHERE {H} AND {T} {G}, \"input\", \"instance\" fill(null)", "$tag_instance panics"),
    (f"SELECT non_negative_difference(last(\"gather_errors\")) FROM \"metrics_agent_gather\" WHERE {H} AND {T} {G}, \"input\", \"instance\" fill(null)", "$tag_instance errors"),
], 12, y)); y += 8
panels.append(panel(18, "Agent RSS and queue depth", [
    (f"SELECT last(\"rss_bytes\") FROM \"metrics_agent\" WHERE {H} AND {T} {G} fill(previous)", "rss"),
    (f"SELECT max(\"queue_depth\") FROM \"metrics_agent\" WHERE {H} AND {T} {G} fill(previous)", "queue depth (lines)"),
], 0, y, w=24, h=6)); y += 6

dashboard = {
    "__inputs": [{"name": "DS_INFLUXDB", "label": "InfluxDB", "type": "datasource",
                  "pluginId": "influxdb", "pluginName": "InfluxDB"}],
    "title": "metrics-agent",
    "uid": "metrics-agent",
    "tags": ["metrics-agent", "telegraf"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [
        var("host", "Host", "SHOW TAG VALUES FROM \"metrics_agent\" WITH KEY = \"host\"", multi=False),
        var("ping_url", "Ping target", "SHOW TAG VALUES FROM \"ping\" WITH KEY = \"url\" WHERE \"host\" =~ /^$host$/"),
        var("http_server", "HTTP target", "SHOW TAG VALUES FROM \"http_response\" WITH KEY = \"server\" WHERE \"host\" =~ /^$host$/"),
        var("tcp_server", "TCP target", "SHOW TAG VALUES FROM \"net_response\" WITH KEY = \"server\" WHERE \"host\" =~ /^$host$/"),
        var("dns_server", "DNS server", "SHOW TAG VALUES FROM \"dns_query\" WITH KEY = \"server\" WHERE \"host\" =~ /^$host$/"),
    ]},
    "panels": panels,
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics-agent.json")
with open(out, "w") as f:
    json.dump(dashboard, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(out)
