"""meepo-kafka: the ``kafka`` sink (:mod:`.kafka_sink`) and consumer-group source
(:mod:`.kafka_source`), their options (:mod:`.config`), message formats (:mod:`.formats`,
:mod:`.debezium`), topic names (:mod:`.topics`) and cluster checks (:mod:`.cluster`)."""
