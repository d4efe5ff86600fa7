"""The ``docker`` backend: node images built without a registry, containers on a private
bridge network, partitions through iptables inside each container's network namespace.

Needs the ``docker`` Python SDK (``pip install jepsenlike[docker]``) and a Docker daemon.
See ``docs/docker.md``.
"""
