"""The gRPC face of idgraph: ``idgraph.v1.ProfileService`` server, servicer and client.

``service.server.create_server`` builds the server; ``service.client.ProfileClient`` calls it.
"""
