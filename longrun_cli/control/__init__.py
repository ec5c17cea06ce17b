"""Operating a running group: the control socket's protocol, server and client (SPEC §8).

Nothing here is imported by ``longrun exec``; the group imports the server, and
``longrun ctl`` the client, only when used.
"""
