package com.edgecrop.cropcore;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * The fields of edgecrop's model card that the pipeline acts on, read from the model's own metadata
 * (edgecrop.modelfile.card.ModelCard, same names and the same validation): how pixels become the input, what the
 * output means, the centre prior mixed in before the search, and the recommended policy.
 */
public final class ModelCard {
    public static final String METADATA_NAME = "edgecrop_model_card";

    /** How pixels become the model's input. */
    public static final class InputCard {
        public final String resize;
        public final double[] mean, std;

        InputCard(String resize, double[] mean, double[] std) {
            this.resize = resize;
            this.mean = mean;
            this.std = std;
        }
    }

    /** p = (1 - w) * p_model + w * centred Gaussian (sigma times each side), w = weight moved by confidence
     *  times how unsure the map is (Saliency.priorWeight). */
    public static final class CentrePrior {
        public final double weight, sigma, confidence;

        CentrePrior(double weight, double sigma, double confidence) {
            if (!(weight >= 0 && weight < 1)) throw new IllegalArgumentException("model card: output.centre_prior.weight must be in [0, 1)");
            if (!(sigma >= 0.01 && sigma <= 10)) throw new IllegalArgumentException("model card: output.centre_prior.sigma must be in [0.01, 10]");
            if (!(confidence >= -10 && confidence <= 10)) throw new IllegalArgumentException("model card: output.centre_prior.confidence must be in [-10, 10]");
            this.weight = weight;
            this.sigma = sigma;
            this.confidence = confidence;
        }
    }

    /** What the output map means and how it becomes a probability map. */
    public static final class OutputCard {
        public final String kind;
        public final double temperature;
        public final CentrePrior centrePrior; // null: none
        public final boolean flipAverage; // the map is the mean of the photo's and its mirror image's

        OutputCard(String kind, double temperature, CentrePrior centrePrior, boolean flipAverage) {
            this.kind = kind;
            this.temperature = temperature;
            this.centrePrior = centrePrior;
            this.flipAverage = flipAverage;
        }
    }

    public final String name;
    public final InputCard input;
    public final OutputCard output;
    public final Policy recommendedPolicy; // null: none

    private ModelCard(String name, InputCard input, OutputCard output, Policy recommendedPolicy) {
        this.name = name;
        this.input = input;
        this.output = output;
        this.recommendedPolicy = recommendedPolicy;
    }

    /** The card a model without one gets (ModelCard.default in Python). */
    public static ModelCard defaultCard(String name) {
        return new ModelCard(name, new InputCard("stretch", new double[] {0, 0, 0}, new double[] {255, 255, 255}),
                new OutputCard("saliency", 1.0, null, false), null);
    }

    /** The card embedded in a .tflite model's metadata, or the default card when it has none. */
    public static ModelCard fromModel(byte[] tflite, String name) {
        byte[] json = TfliteMetadata.read(tflite).get(METADATA_NAME);
        return json == null ? defaultCard(name) : fromJson(new String(json, StandardCharsets.UTF_8));
    }

    @SuppressWarnings("unchecked")
    public static ModelCard fromJson(String text) {
        Object root = Json.parse(text);
        Map<String, Object> card = object(root, "model card");
        Object name = card.get("name");
        if (!(name instanceof String) || ((String) name).trim().isEmpty())
            throw new IllegalArgumentException("model card: name must be a non-empty string");
        Map<String, Object> in = card.containsKey("input") ? object(card.get("input"), "input") : Map.of();
        Map<String, Object> out = card.containsKey("output") ? object(card.get("output"), "output") : Map.of();
        String resize = choice(in.getOrDefault("resize", "stretch"), "input.resize", "letterbox", "stretch");
        double[] mean = triple(in.getOrDefault("mean", List.of(0.0, 0.0, 0.0)), "input.mean", false);
        double[] std = triple(in.getOrDefault("std", List.of(255.0, 255.0, 255.0)), "input.std", true);
        String kind = choice(out.getOrDefault("kind", "saliency"), "output.kind", "logits", "probability", "saliency");
        double temperature = number(out.getOrDefault("temperature", 1.0), "output.temperature");
        if (!(temperature >= 1e-3 && temperature <= 1e3))
            throw new IllegalArgumentException("model card: output.temperature must be in [0.001, 1000]");
        CentrePrior prior = null;
        Object p = out.get("centre_prior");
        if (p != null) {
            Map<String, Object> m = object(p, "output.centre_prior");
            prior = new CentrePrior(number(m.get("weight"), "output.centre_prior.weight"),
                    number(m.get("sigma"), "output.centre_prior.sigma"),
                    number(m.getOrDefault("confidence", 0.0), "output.centre_prior.confidence"));
        }
        Object flip = out.getOrDefault("flip_average", Boolean.FALSE);
        if (!(flip instanceof Boolean))
            throw new IllegalArgumentException("model card: output.flip_average must be true or false");
        Object policy = card.get("recommended_policy");
        Policy recommended = null;
        if (policy != null) {
            if (!(policy instanceof String)) throw new IllegalArgumentException("model card: recommended_policy must be a string");
            try {
                recommended = Policy.parse((String) policy);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("model card: recommended_policy: " + e.getMessage());
            }
        }
        return new ModelCard((String) name, new InputCard(resize, mean, std), new OutputCard(kind, temperature, prior, (Boolean) flip),
                recommended);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> object(Object o, String where) {
        if (!(o instanceof Map)) throw new IllegalArgumentException("model card: " + where + " must be a JSON object");
        return (Map<String, Object>) o;
    }

    private static double number(Object o, String where) {
        if (!(o instanceof Double) || !Double.isFinite((Double) o))
            throw new IllegalArgumentException("model card: " + where + " must be a finite number");
        return (Double) o;
    }

    private static String choice(Object o, String where, String... allowed) {
        for (String a : allowed) if (a.equals(o)) return a;
        throw new IllegalArgumentException("model card: " + where + " must be one of " + String.join(", ", allowed));
    }

    private static double[] triple(Object o, String where, boolean positive) {
        if (!(o instanceof List) || ((List<?>) o).size() != 3)
            throw new IllegalArgumentException("model card: " + where + " must be three finite numbers");
        double[] out = new double[3];
        for (int k = 0; k < 3; k++) {
            out[k] = number(((List<?>) o).get(k), where);
            if (positive && !(out[k] > 0)) throw new IllegalArgumentException("model card: " + where + " must be positive");
        }
        return out;
    }
}
