# Python-literal app file in the original's format (after res/apps/example_std.app):
# comments, a tuple for mod, single and double quotes, trailing commas.
{
    "type":"application",
    "name":"example_std",
    "description": "Example application with standard process app",
    "version": "0.1",
    "mod": ("ion.core.pack.processapp", [
                'hello_service',
                'ion.play.hello_service',
                'HelloService'
            ],
            {'firstSpawnArg':'Here'}
        ),
    "modules": [
        "ion.zapps.example",
    ],
    "registered": [
        "example"
    ],
    "applications": [
        "ioncore","ccagent"
    ],
    "config": {'ion.play.hello_service': {'greeting': None, 'loud': True}},
}
