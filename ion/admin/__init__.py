"""Setting up ion systems on RabbitMQ: vhosts, broker users and their permissions (ion-admin)."""
