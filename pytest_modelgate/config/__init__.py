"""Configuration: ``modelgate.yaml`` (``settings``), the safe YAML reader every file goes through
(``yamlfile``), and the pytest ini values read outside pytest (``inifile``).
Never imports pytest.
"""
