# Looks like the literal format but would need eval: refused, never run.
{
    "type": "application",
    "name": __import__("os").system("touch ion-evil-app-ran"),
    "version": "0.1",
}
