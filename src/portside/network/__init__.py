"""Container networking: namespaces, CNI plugins, published ports, names.

The engine's surface is `portside.network.api`:

    mode = parse_network_mode(opts.network)            # none | host | container: | ns: | names
    net = Networking(root, runroot)
    path = net.create_netns(cid)                       # if mode.needs_netns
    res = net.setup(cid, path, [NetworkRequest(n, ip=, mac=, aliases=)], ports=..., name=)
    res.hosts(hostname, names), res.resolv()           # /etc/hosts, /etc/resolv.conf content
    net.teardown(cid); net.remove_netns(path)          # on rm, from the result cache
    portside.network.cleanup.cleanup(net, live_ids)    # start-up and system prune

The rest are the parts it is built from: mode (--network values), netns (pinned
namespaces), cni/ (conflists, plugin invocation, result cache), ports (-p/-P), dns
(container files, name registry, responder control), dnsserver (the responder process),
cleanup (the sweep). The engine's glue (plans at create, up at start, down at exit and
rm, the monitor's exit command) is portside.engine.networking.
"""
